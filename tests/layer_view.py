"""Run import-linter's layers contract (``[tool.importlinter]`` in pyproject.toml) on this checkout.

The packages live in top-level folders (``model/``, ``export/``, ...) that setuptools maps onto
``fornet.*``; import-linter walks the ``fornet`` package folder, so it is given a copy of the
sources laid out as ``fornet/{model,export,runtime,calibration}``. Every import counts, those
inside functions too: a function-local import cannot dodge a layer.

``python -m tests.layer_view`` checks the checkout (``make test`` runs it); the tests also use
:func:`layered_copy` to prove that a back-edge breaks the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Sub-packages that live in top-level folders of the checkout.
MAPPED_PACKAGES = ("calibration", "model", "runtime", "export")


def layered_copy(destination: Path) -> Path:
    """Copy the Python sources into ``destination/fornet/...``; return ``destination``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.cu")
    shutil.copytree(REPO / "fornet", destination / "fornet", ignore=ignore)
    for name in MAPPED_PACKAGES:
        shutil.copytree(REPO / name, destination / "fornet" / name, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", destination / "pyproject.toml")
    return destination


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` on a :func:`layered_copy` at ``root``."""
    executable = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(executable), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def main() -> int:
    """Check the checkout; print import-linter's report; exit with its status."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fornet-layers-") as tmp:
        result = lint_imports(layered_copy(Path(tmp)))
    print(result.stdout + result.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
