"""benchmarks/serve_bench.py runs end to end with tiny settings: its own server, local vs served, a report."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_serve_bench_script(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("serve_bench", REPO / "benchmarks" / "serve_bench.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    sys.modules["serve_bench"] = script
    spec.loader.exec_module(script)
    out = tmp_path / "results.md"
    assert script.main(["--work", str(tmp_path / "work"), "--out", str(out), "--input-size", "64x128",
                        "--requests", "3", "--repeats", "2", "--concurrency", "1,2", "--threads", "1"]) == 0
    text = out.read_text()
    assert "| served, concurrency 2 |" in text and "all equal, none lost" in text
