"""The layers contracts hold and catch a back-edge; ruff keeps imports where they belong (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.layer_view import REPO, layered_copy, lint_imports


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return layered_copy(tmp_path_factory.mktemp("layers"))


def test_the_checkout_keeps_its_layers(layered: Path) -> None:
    result = lint_imports(layered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "edge"), [
    ("calibration/labels.py", "import fornet.export.api", "fornet.calibration is not allowed to import fornet.export"),
    ("runtime/model_io.py", "from fornet.cli import main", "fornet.runtime is not allowed to import fornet.cli"),
    ("records.py", "import fornet.model", "is not allowed to import fornet.model"),
    # inside the runtime
    ("runtime/cuda/context.py", "import fornet.runtime.tensorrt.env",
     "fornet.runtime.cuda is not allowed to import fornet.runtime.tensorrt"),
    ("runtime/model_io.py", "from fornet.runtime.tensorrt.plan_metadata import EngineMetadata",
     "fornet.runtime.model_io is not allowed to import fornet.runtime.tensorrt"),
    ("runtime/pipelines.py", "from fornet.runtime.segmenter import Segmenter",
     "fornet.runtime.pipelines is not allowed to import fornet.runtime.segmenter"),
    ("runtime/video/pipeline.py", "from fornet.runtime.serving import server",
     "fornet.runtime.video is not allowed to import fornet.runtime.serving"),
])
def test_a_back_edge_breaks_the_contract(tmp_path: Path, module: str, line: str, edge: str) -> None:
    root = layered_copy(tmp_path)
    target = root / "fornet" / module
    # inside a function, as back-edges used to hide: import-linter still sees it
    target.write_text(target.read_text() + f"\n\ndef _back_edge() -> None:\n    {line}\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert edge in result.stdout


def test_a_runtime_module_without_a_place_breaks_the_contract(tmp_path: Path) -> None:
    root = layered_copy(tmp_path)
    (root / "fornet" / "runtime" / "unplaced.py").write_text('"""A module nobody gave a layer."""\n')
    result = lint_imports(root)
    assert result.returncode != 0
    assert "fornet.runtime.unplaced" in result.stdout and "not listed as layers" in result.stdout


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in tests/helpers/; a test module is never a library for another."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module or ''}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name.rpartition(".")[2].startswith("test_") for name in names):
                offenders.append(f"{path.relative_to(tests)}:{node.lineno}")
    assert not offenders, f"test modules imported by others (move the shared code to tests/helpers/): {offenders}"


def _ruff(path: str, source: str) -> str:
    """ruff's findings on ``source`` as if it were the checkout's file ``path`` (the repository's settings)."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", "--stdin-filename", path, "-"],
                            input=source, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    return result.stdout


@pytest.mark.parametrize(("path", "source", "rule"), [
    # an own module imported inside a function hides an edge: it belongs at the top
    ("runtime/planted.py", "def f():\n    from fornet.runtime.errors import FornetRuntimeError\n", "PLC0415"),
    ("fornet/cli/planted.py", "def f():\n    import fornet.calibration.labels\n", "PLC0415"),
    # a heavy library at the top of a light module loads with it (fornet --help, the torch-free runtime path)
    ("runtime/planted.py", "import torch\n", "TID253"),
    ("fornet/cli/planted.py", "from onnxruntime import InferenceSession\n", "TID253"),
    ("fornet/cli/planted.py", "from fornet.model.checkpoint import load_model\n", "TID253"),
])
def test_ruff_refuses_a_misplaced_import(path: str, source: str, rule: str) -> None:
    assert rule in _ruff(path, source)


@pytest.mark.parametrize("source", [
    "def f():\n    import torch\n",  # a heavy library where it is used
    "def f():\n    from fornet.model.checkpoint import load_model\n",  # a torch-bound module where it is used
    "from fornet.runtime.errors import FornetRuntimeError\n",  # an own module at the top
])
def test_ruff_accepts_the_import_rules(source: str) -> None:
    assert "PLC0415" not in _ruff("runtime/planted.py", source)
    assert "TID253" not in _ruff("runtime/planted.py", source)
