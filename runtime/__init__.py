"""Running exported FoR-Net models: backends, pre/post-processing, metrics, benchmarks.

``Segmenter``, ``Segmentation`` and ``StageTimes`` are loaded on first use, so importing a light
submodule (e.g. ``fornet.calibration.metrics``) does not import the backends.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Segmenter": "fornet.runtime.segmenter",
    "Segmentation": "fornet.runtime.pipelines",
    "StageTimes": "fornet.runtime.pipelines",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fornet.runtime' has no attribute {name!r}")
