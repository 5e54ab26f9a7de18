"""The layers contracts hold, and they would catch a back-edge (see docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.layer_view import layered_copy, lint_imports


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
