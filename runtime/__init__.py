"""Running exported FoR-Net models: backends, pre/post-processing, metrics, benchmarks.

``ModelSpec``, ``Segmenter``, ``Segmentation`` and ``StageTimes`` are loaded on first use, so importing a light
submodule (e.g. ``fornet.calibration.metrics``) does not import the backends.
"""

from __future__ import annotations

from fornet.lazy import lazy_exports

_LAZY = {
    "ModelSpec": "fornet.runtime.model_spec",
    "Segmenter": "fornet.runtime.segmenter",
    "Segmentation": "fornet.runtime.pipelines",
    "StageTimes": "fornet.runtime.pipelines",
}

__getattr__, __all__ = lazy_exports("fornet.runtime", _LAZY)
