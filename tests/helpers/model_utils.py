"""Helpers for tests that need a FoR-Net with realistic (non-degenerate) weights."""

from __future__ import annotations

import torch
from torch import nn

from fornet.model import FoRNet, build_model


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters.

    Freshly initialised BatchNorms are identities with zero shift; random statistics make
    activations (and so the selector's ranking) look like a trained network's.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
    return model


def realistic_model(variant: str, seed: int = 0, num_classes: int = 19) -> FoRNet:
    """A seeded FoR-Net in eval mode with randomised BatchNorm statistics."""
    torch.manual_seed(seed)
    return randomize_batchnorm(build_model(variant, num_classes=num_classes), seed).eval()
