"""FoR-Net in PyTorch: the reference model, lighter variants, checkpoints, loss and training.

The public names are loaded on first use, so importing a light submodule (``fornet.model.config``,
``fornet.model.memory``, ``fornet.model.errors``) does not import torch: the ONNX Runtime path, the
serving environment and ``fornet --help`` stay torch-free.
"""

from __future__ import annotations

from fornet.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports("fornet.model", _LAZY)
