"""Imports that load on first use, so light modules stay light.

Two helpers: :func:`lazy_exports` gives a package namespace whose public names load on first use
(PEP 562), and :func:`lazy_import` names a heavy optional library (torch, onnx, ...) at the top of a
module without importing it until one of its attributes is used (Polygraphy's ``lazy_import``).
Our own modules are always imported at the top level; only the heavy libraries listed in
``banned-module-level-imports`` (pyproject.toml, enforced by ruff) are deferred, here or inside the
function that uses them.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package`` exporting ``name -> module`` from ``table``."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(table)


class _LazyModule(types.ModuleType):
    """Stands for module ``__name__`` and imports it when an attribute is first read."""

    def __getattr__(self, attribute: str) -> Any:
        # Imported on every read rather than cached: the import system's own cache makes it cheap,
        # and a library removed from sys.modules (a test faking a missing one) is seen as missing.
        return getattr(importlib.import_module(self.__name__), attribute)


def lazy_import(name: str) -> types.ModuleType:
    """Module ``name``, imported when one of its attributes is first used.

    Write ``torch = lazy_import("torch")`` at the top of a module (with ``import torch`` under
    ``if TYPE_CHECKING:`` for the type checker); a missing library raises its ``ImportError`` where it
    is first used.
    """
    return _LazyModule(name)
