"""``fornet-info``."""

from __future__ import annotations

import json

import pytest

from fornet.cli.info import main
from fornet.model.info import variant_info


def test_info_reports_k_and_plugin_need(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--variant", "r101", "--input-size", "1024x2048"]) == 0
    out = capsys.readouterr().out
    assert "k=3277" in out and "k=13107" in out
    assert "exceeds TensorRT's native TopK limit of 3840" in out
    assert "50.17 M" in out


def test_info_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--variant", "lite", "--input-size", "512x1024", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "fornet-deploy/variant-info/1"
    assert data["variants"][0]["selector_grid"] == [32, 64] and data["variants"][0]["native_topk_ok"] is True
    assert main(["--all", "--input-size", "256x512"]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["r101", "r50", "r34", "r18", "lite"]


def test_gmacs_scale_with_pixels() -> None:
    small, big = variant_info("r18", (256, 512)), variant_info("r18", (512, 1024))
    assert big.gmacs == pytest.approx(4 * small.gmacs, rel=0.01)


def test_info_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--variant", "lite", "--input-size", "100x200"]) == 2
    assert "not divisible by lite's output stride 16" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--variant", "lite", "--input-size", "big"])


def test_engine_without_tensorrt_is_a_clear_error(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from fornet.runtime.tensorrt.env import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here: the missing-TensorRT message cannot be shown")
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"\0" * 64)
    assert main(["--engine", str(plan)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "TensorRT" in err and "Traceback" not in err


def test_info_describes_an_onnx_file_and_its_sidecar(lite, capsys: pytest.CaptureFixture[str]) -> None:
    """``fornet info --model fornet.onnx`` says what the file is (it used to ask for a TensorRT rebuild)."""
    from fornet.hashing import sha256_file

    assert main(["--model", str(lite.raw_labels)]) == 0
    out = capsys.readouterr().out
    assert f"sha256: {sha256_file(lite.raw_labels)}" in out and "precision: fp32" in out
    assert "input  image: ?x64x128x3 uint8" in out and "output labels: " in out and "uint8" in out
    assert "describes this file" in out and "TensorRT" not in out.split("Top-K gate:")[0]


def test_info_of_a_damaged_onnx_file_says_so(lite, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "fornet.onnx"
    broken.write_bytes(lite.onnx.read_bytes()[:1000])
    assert main(["--engine", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "is not a readable ONNX model" in err and "re-export it" in err and "Traceback" not in err
