"""The command line: fornet export --triton/--deepstream, fornet serve's arguments (its stops: test_triton_stop.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fornet.cli import export
from fornet.export.deepstream.check import read_key_file
from fornet.export.deepstream.schema import DEEPSTREAM_APP_SCHEMA
from fornet.export.staging import MARKER_NAME, PackageMarker
from fornet.export.triton.check import parse_config
from fornet.export.triton.repository import PACKAGE_KIND as TRITON_REPOSITORY
from tests.helpers.runtime_models import LiteExport


def test_export_writes_checked_triton_and_deepstream_packages(
        lite: LiteExport, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = lite.checkpoint
    status = export.main(["--ckpt", str(checkpoint), "--input-size", "64x128", "--no-verify", "--quiet",
                          "--input", "raw", "--channel-order", "BGR", "--dynamic-batch", "--out", str(tmp_path / "x"),
                          "--triton", str(tmp_path / "repo"), "--triton-instance", "cpu",
                          "--deepstream", str(tmp_path / "ds"), "--target", "orin-nano-8gb", "--fp16"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "models checked against Triton's schema: fornet, fornet_onnx" in out
    assert "checked with GLib, and nvinfer's input path and segmentation parser against the project's " \
           "preprocessing on 2 images" in out
    assert parse_config(tmp_path / "repo" / "fornet_onnx" / "config.pbtxt").max_batch_size == 8
    assert (tmp_path / "ds" / "config_infer_primary_fornet_scores.txt").is_file()
    app = read_key_file(tmp_path / "ds" / "deepstream_app_config.txt", DEEPSTREAM_APP_SCHEMA)
    assert app["sink0"]["enc-type"] == 1  # Orin Nano has no NVENC
    assert f"build its strongly typed FP16 plans on the device, in {tmp_path / 'ds'}:\n" \
           "  fornet-build --onnx fornet_scores.onnx --out fornet_scores.plan" in out


def test_export_refuses_an_existing_repository_before_exporting(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "repo").mkdir()
    status = export.main(["--ckpt", str(tmp_path / "missing.pth"), "--triton", str(tmp_path / "repo"),
                          "--out", str(tmp_path / "x")])
    assert status == 2
    assert "--triton" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.fault
@pytest.mark.parametrize(("folders", "message"), [
    ({"--out": "x", "--triton": "x"}, "--out {x} is the same folder as --triton {x}"),
    ({"--out": "repo/export", "--triton": "repo"}, "--out {repo/export} overlaps --triton {repo}"),
    ({"--out": "x", "--deepstream": "x/ds"}, "--out {x} overlaps --deepstream {x/ds}"),
    ({"--out": "x", "--triton": "p", "--deepstream": "p/../p"}, "--triton {p} is the same folder as --deepstream"),
])
def test_export_refuses_overlapping_output_folders_before_any_work(
        lite: LiteExport, tmp_path: Path, capsys: pytest.CaptureFixture[str], folders: dict[str, str],
        message: str) -> None:
    """Each output folder is replaced as a whole: ``--out X --triton X --replace-packages`` used to print
    "wrote X/fornet.onnx" and then delete it (or, with an existing repository around the export, exit 0)."""
    existing = tmp_path / "repo"
    existing.mkdir()
    PackageMarker(TRITON_REPOSITORY).save(existing / MARKER_NAME)
    argv = [arg for flag, name in folders.items() for arg in (flag, str(tmp_path / name))]
    status = export.main(["--ckpt", str(lite.checkpoint), "--input-size", "64x128", "--no-verify", "--quiet",
                          "--input", "raw", "--replace-packages", *argv])
    err = capsys.readouterr().err
    assert status == 2
    expected = message.replace("{", str(tmp_path) + "/").replace("}", "")
    assert expected in err and "give them separate folders" in err and "nothing was written" in err
    assert not list(tmp_path.rglob("fornet.onnx")) and sorted(p.name for p in existing.iterdir()) == [MARKER_NAME]


def test_deepstream_needs_raw_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = export.main(["--ckpt", str(tmp_path / "missing.pth"), "--deepstream", str(tmp_path / "ds")])
    assert status == 2 and "--input raw" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["a.onnx", "--model", "b.onnx"]])
def test_serve_takes_the_model_once(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``fornet serve MODEL`` and ``fornet serve --model MODEL`` are the two spellings; neither or both is an error."""
    from fornet.cli.serve import main

    assert main([*argv, "--device", "cpu"]) == 2
    assert "name the model once: `fornet serve MODEL` or `fornet serve --model MODEL`" in capsys.readouterr().err


@pytest.mark.fault
def test_serve_a_checkpoint_says_what_the_server_environment_needs(lite: LiteExport,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``fornet serve best.pth --input-size ...``: the server environment is torch-free; an error naming both ways
    out (export to ONNX, or torch into the server environment) before anything starts, not a traceback."""
    from fornet.cli.serve import main

    assert main([str(lite.checkpoint), "--input-size", "64x128", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: lite.pth opens with the torch backend, which needs torch in the server environment")
    assert "fornet export" in err and "install torch into it" in err and "Traceback" not in err
