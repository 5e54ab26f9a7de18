"""The layers contract holds, and it would catch a back-edge (see docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.layer_view import layered_copy, lint_imports


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return layered_copy(tmp_path_factory.mktemp("layers"))


def test_the_checkout_keeps_its_layers(layered: Path) -> None:
    result = lint_imports(layered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "edge"), [
    ("calibration/labels.py", "import fornet.export.api", "fornet.calibration is not allowed to import fornet.export"),
    ("runtime/model_io.py", "from fornet.cli import main", "fornet.runtime is not allowed to import fornet.cli"),
    ("records.py", "import fornet.model", "is not allowed to import fornet.model"),
])
def test_a_back_edge_breaks_the_contract(tmp_path: Path, module: str, line: str, edge: str) -> None:
    root = layered_copy(tmp_path)
    target = root / "fornet" / module
    # inside a function, as back-edges used to hide: import-linter still sees it
    target.write_text(target.read_text() + f"\n\ndef _back_edge() -> None:\n    {line}\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert edge in result.stdout
