"""benchmarks/cpu_backends.py runs end to end (tiny settings), INT8 included when its file is present."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_script():
    name = "cpu_backends"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "cpu_backends.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_cpu_backends_script(tmp_path, capsys):
    script = load_script()
    args = ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "results.md"), "--variants", "lite",
            "--input-size", "64x128", "--frame-size", "96x160", "--threads", "1", "--warmup-s", "0",
            "--min-iters", "2", "--duration-s", "0"]
    assert script.main(args) == 0
    first = (tmp_path / "results.md").read_text()
    assert "| onnxruntime-int8 | skipped: no fornet_int8.onnx" in first
    assert "| pytorch-eager |" in first and "| onnxruntime-fp32 |" in first and "G multiply-accumulates" in first
    # A quantized file in the work folder joins the comparison (here a stand-in with the FP32 graph).
    shutil.copy(tmp_path / "work" / "lite" / "fornet.onnx", tmp_path / "work" / "lite" / "fornet_int8.onnx")
    assert script.main(args) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    variant = record["variants"][0]
    assert set(variant["end_to_end"]) == {"pytorch-eager", "onnxruntime-fp32", "onnxruntime-int8"}
    assert all(stats["iterations"] >= 2 for stats in variant["compute"].values())
    assert 0 < variant["stages"]["onnxruntime-fp32"]["prepost_share"] < 1
    assert "wrote" in capsys.readouterr().out


def load_post_upsample():
    name = "post_upsample_bench"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "post_upsample_bench.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_post_upsample_script(tmp_path, capsys):
    """Small settings: both maps checked equal, timed interleaved, the record and table written."""
    out = tmp_path / "results.md"
    args = ["--out", str(out), "--frame-size", "96x160", "--network", "48x80", "--warmup-s", "0",
            "--min-iters", "2", "--duration-s", "0"]
    assert load_post_upsample().main(args) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert [row["map"] for row in record["maps"]] == ["scene", "blobs", "noise"]
    for row in record["maps"]:
        assert set(row["candidates"]) == {"fast path", "full resize-then-argmax", "torch interpolate + argmax"}
        assert all(stats["iterations"] >= 2 for stats in row["candidates"].values())
        assert 0 <= row["open_pixels"] <= 1 and row["speedup"] > 0 and row["cpu_speedup"] > 0
    table = out.read_text()
    assert "| scene |" in table and "command: `python benchmarks/post_upsample_bench.py --out" in table
    assert "CPU time of the process, all threads" in table and "post thread(s)" in table
    assert "wrote" in capsys.readouterr().out


def test_post_upsample_script_refuses_unknown_maps(tmp_path, capsys):
    assert load_post_upsample().main(["--out", str(tmp_path / "r.md"), "--maps", "fog"]) == 2
    assert "--maps takes scene, blobs, noise; unknown: fog" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()
