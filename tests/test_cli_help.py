"""``fornet --help`` and every ``fornet <command> --help`` (and alias) import no heavy library.

Each help runs in a fresh interpreter, which then lists the heavy libraries it holds in
``sys.modules``. Heavy means the third-party modules of ruff's ``banned-module-level-imports``
(pyproject.toml): torch, onnxruntime, onnx, cv2, tensorrt, ... The speed of the help texts is
measured by ``benchmarks/cli_help.py``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from fornet.cli.main import COMMAND_MODULES

REPO = Path(__file__).resolve().parent.parent
SETTINGS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["flake8-tidy-imports"]
HEAVY = sorted(name for name in SETTINGS["banned-module-level-imports"] if not name.startswith("fornet"))

#: Runs the help of ``sys.argv[1]`` (``main`` or a command module's alias) with ``sys.argv[2:]``, then prints
#: the heavy modules loaded as JSON.
PROBE = """
import importlib, json, sys
module, argv, heavy = sys.argv[1], sys.argv[2:], json.loads(sys.stdin.read())
try:
    importlib.import_module(f"fornet.cli.{module}").main([*argv, "--help"])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("\\nLOADED " + json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""


def _loaded_by_help(module: str, *argv: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, module, *argv], input=json.dumps(HEAVY),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    loaded: list[str] = json.loads(result.stdout.rsplit("LOADED ", 1)[1])
    return loaded


def test_the_heavy_libraries_are_the_ones_ruff_defers() -> None:
    assert {"torch", "onnxruntime", "onnx", "tensorrt", "cv2"} <= set(HEAVY)


def test_fornet_help_imports_no_heavy_library() -> None:
    assert _loaded_by_help("main") == []


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_command_help_imports_no_heavy_library(module: str) -> None:
    name = module.replace("_", "-")
    assert _loaded_by_help("main", name) == [], f"fornet {name} --help"


@pytest.mark.parametrize("module", ["data", "export", "train"])
def test_alias_help_imports_no_heavy_library(module: str) -> None:
    assert _loaded_by_help(module) == [], f"fornet-{module} --help"


@pytest.mark.slow
def test_the_help_benchmark_times_every_command(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cli_help.py"), "--repeat", "1", "--out",
                             str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    table = out.read_text()
    for module in COMMAND_MODULES:
        assert f"| `fornet {module.replace('_', '-')} --help` | this checkout |" in table
    assert "| `fornet --help` | this checkout |" in table and "| `python -c pass` | python |" in table
    assert "Load average" in table and "Slowest help of this checkout" in table
