"""PyTorch -> ONNX (FP32 / FP16 / INT8) -> TensorRT export of FoR-Net.

``export_onnx``, ``ExportOptions``, ``ExportResult`` and ``IOFormat`` are loaded on first use,
so importing a light submodule (e.g. ``fornet.export.topk_gate_reference``) does not import
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_onnx": "fornet.export.api",
    "ExportOptions": "fornet.export.api",
    "ExportResult": "fornet.export.api",
    "IOFormat": "fornet.export.prepost",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fornet.export' has no attribute {name!r}")
