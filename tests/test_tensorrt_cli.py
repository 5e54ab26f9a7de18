"""fornet-build (export/build_cli.py) called in-process: help and user errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fornet.cli.build import main
from tests.helpers.onnx_graphs import save_model


def test_help_needs_no_tensorrt(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--onnx", "--plugin", "--workspace", "--opt-level", "--timing-cache", "--min-batch", "--max-batch",
                 "--version-compatible", "--hardware-compat", "--legacy-int8-cache"):
        assert flag in out


def test_missing_onnx_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert capsys.readouterr().err.startswith("error: ONNX file")


def test_without_tensorrt_is_exit_2_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert main(["--onnx", str(save_model(tmp_path / "fornet.onnx")), "--max-batch", "2"]) == 2
    err = capsys.readouterr().err
    assert "error: TensorRT is not importable" in err and "python3-libnvinfer" in err
    assert not (tmp_path / "fornet.plan").exists()


def test_contradictory_batches_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--onnx", str(tmp_path / "m.onnx"), "--min-batch", "4", "--max-batch", "2"]) == 2
    assert "min <= opt <= max" in capsys.readouterr().err


def test_argparse_rejects_bad_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--onnx", "m.onnx", "--opt-level", "9"])
    assert info.value.code == 2
    assert "--opt-level" in capsys.readouterr().err


def test_print_commands_needs_no_tensorrt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    onnx_path = save_model(tmp_path / "fornet.onnx")
    assert main(["--onnx", str(onnx_path), "--workspace", "1024", "--print-commands"]) == 0
    build, trtexec = capsys.readouterr().out.splitlines()
    assert build == f"fornet-build --onnx {onnx_path} --workspace 1024"
    assert trtexec.startswith(f"trtexec --onnx={onnx_path} --saveEngine={tmp_path / 'fornet.plan'}")
    assert "--memPoolSize=workspace:1024M" in trtexec


def test_print_commands_warns_about_the_local_function(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path = save_model(tmp_path / "fornet.onnx", gate=True, function=True)
    assert main(["--onnx", str(onnx_path), "--plugin", "/opt/lib/libfornet_plugins.so", "--print-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "--staticPlugins=/opt/lib/libfornet_plugins.so" in lines[1]
    assert lines[2].startswith("# note: trtexec before TensorRT 10.7 expands the model-local function")
