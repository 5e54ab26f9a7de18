"""FoR-Net in PyTorch: the reference model, lighter variants, checkpoints, loss and training."""

from fornet.model.checkpoint import CheckpointError, load_model, save_checkpoint
from fornet.model.config import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, FoRNetConfig
from fornet.model.fornet import FoRNet
from fornet.model.gate import TENSORRT_TOPK_LIMIT, TopKGate, topk_counts, topk_masks
from fornet.model.variants import build_model, list_variants

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TENSORRT_TOPK_LIMIT",
    "VARIANTS",
    "CheckpointError",
    "FoRNet",
    "FoRNetConfig",
    "TopKGate",
    "build_model",
    "list_variants",
    "load_model",
    "save_checkpoint",
    "topk_counts",
    "topk_masks",
]
