"""The one-shot device check plans its steps and checks its own inputs on any machine (--dry-run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "device_check.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": sys.executable}, timeout=120)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_plans_every_step_and_writes_the_summary(tmp_path: Path) -> None:
    done = run("--dry-run", "--out", str(tmp_path / "check"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "check" / "summary.json").read_text())
    assert summary["status"] == "dry run" and summary["input_problems"] == []
    names = [step["name"] for step in summary["steps"]]
    assert names == ["environment", "compile_topk_gate_kernel", "compile_prepost", "gate_kernel", "prepost_kernels",
                     "pycuda_runtime", "plugin_harness", "plugin_harness_memcheck", "pytest_gpu"]
    commands = {step["name"]: " ".join(step["command"]) for step in summary["steps"]}
    assert "--grid 128x256 --batches 1,2,3,4 --dtypes fp32,fp16" in commands["gate_kernel"]
    assert "plugin_check.py --device --strict" in commands["plugin_harness"]
    assert "--compute-sanitizer memcheck" in commands["plugin_harness_memcheck"]
    assert "-m gpu" in commands["pytest_gpu"] and "test_tensorrt_runtime_lifecycle.py" in commands["pytest_gpu"]
    assert "Commands" in (tmp_path / "check" / "summary.md").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_reports_a_wheels_folder_without_pycuda(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    done = run("--dry-run", "--out", str(tmp_path / "check"), "--wheels", str(tmp_path / "wheels"))
    assert done.returncode == 2
    assert "holds no pycuda sdist or wheel" in done.stderr and "--fetch-wheels" in done.stderr
    (tmp_path / "wheels" / "pycuda-2026.1.tar.gz").write_bytes(b"")
    assert run("--dry-run", "--out", str(tmp_path / "check"), "--wheels", str(tmp_path / "wheels")).returncode == 0


def test_unknown_option_is_refused() -> None:
    done = run("--frobnicate")
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr


def load_device_check():
    """benchmarks/ is not a package: import the script by path."""
    import importlib.util

    name = "device_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "device_check.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_environment_reports_pycuda_by_its_version_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """pycuda has no ``__version__``: the step reported it "missing" on a machine where it ran."""
    import types

    pycuda = types.ModuleType("pycuda")
    pycuda.VERSION_TEXT = "2026.1"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    found = load_device_check().environment()
    assert found["pycuda"] == "2026.1"
    assert found["numpy"] == __import__("numpy").__version__
