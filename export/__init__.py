"""PyTorch -> ONNX (FP32 / FP16 / INT8) -> TensorRT export of FoR-Net.

``export_onnx``, ``ExportOptions``, ``ExportResult`` and ``IOFormat`` are loaded on first use,
so importing a light submodule (e.g. ``fornet.export.topk_gate_reference``) does not import
torch.
"""

from __future__ import annotations

from fornet.lazy import lazy_exports

_LAZY = {
    "export_onnx": "fornet.export.api",
    "ExportOptions": "fornet.export.options",
    "ExportResult": "fornet.export.api",
    "IOFormat": "fornet.export.options",
}

__getattr__, __all__ = lazy_exports("fornet.export", _LAZY)
