"""benchmarks/int8_bench.py runs end to end at a tiny size and reports accuracy and latency."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests.helpers.int8 import lite_checkpoint

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "int8_bench.py"


def _script():
    name = "int8_bench"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_int8_bench_tiny_run(tmp_path: Path, synth_root: Path, capsys) -> None:
    out = tmp_path / "bench"
    args = ["--name", "tiny", "--ckpt", str(lite_checkpoint(tmp_path)), "--data", str(synth_root),
            "--input-size", "64x128", "--out", str(out), "--calib-method", "minmax", "--runs", "2", "--warmup", "1"]
    assert _script().main(args) == 0
    report = json.loads((out / "int8_bench.json").read_text())
    assert report["accuracy_gate"]["passed"] and report["accuracy_gate"]["k_exact"]
    assert report["latency"]["fp32"]["runs"] == report["latency"]["int8"]["runs"] == 2
    assert report["speedup_median"] > 0 and report["input_shape"] == "1x3x64x128" and report["threads"] == 2
    assert report["command"].startswith("python benchmarks/int8_bench.py --name tiny")
    text = capsys.readouterr().out
    assert "Speed-up INT8 vs FP32" in text and "| fp32 |" in text and "| int8 |" in text
    assert "### tiny: `lite` at 64x128" in (out / "int8_bench.md").read_text()
