"""FoR-Net in PyTorch: the reference model, lighter variants, checkpoints, loss and training.

The public names are loaded on first use, so importing a light submodule (``fornet.model.config``,
``fornet.model.memory``, ``fornet.model.errors``) does not import torch: the ONNX Runtime path, the
serving environment and ``fornet --help`` stay torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CheckpointError": "fornet.model.checkpoint",
    "load_model": "fornet.model.checkpoint",
    "save_checkpoint": "fornet.model.checkpoint",
    "IMAGENET_MEAN": "fornet.model.config",
    "IMAGENET_STD": "fornet.model.config",
    "VARIANTS": "fornet.model.config",
    "FoRNetConfig": "fornet.model.config",
    "FoRNet": "fornet.model.fornet",
    "TENSORRT_TOPK_LIMIT": "fornet.model.gate",
    "TopKGate": "fornet.model.gate",
    "topk_counts": "fornet.model.gate",
    "topk_masks": "fornet.model.gate",
    "build_model": "fornet.model.variants",
    "list_variants": "fornet.model.variants",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fornet.model' has no attribute {name!r}")
