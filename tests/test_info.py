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
