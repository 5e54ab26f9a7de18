"""``build_model`` / ``list_variants``: the public way to create a FoR-Net."""
# ruff: noqa: TID253

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from fornet.errors import FornetError
from fornet.model.checkpoint import read_state_dict
from fornet.model.config import VARIANTS, FoRNetConfig
from fornet.model.fornet import FoRNet


def list_variants() -> list[str]:
    """Names accepted by :func:`build_model` (``r101`` is the reference configuration)."""
    return list(VARIANTS)


def variant_config(variant: str, num_classes: int = 19, **overrides: Any) -> FoRNetConfig:
    """The configuration of ``variant`` with ``num_classes`` and field overrides applied."""
    if variant not in VARIANTS:
        raise FornetError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    fields = {f.name for f in dataclasses.fields(FoRNetConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise FornetError(f"unknown model option(s) {', '.join(unknown)}; "
                          f"valid options: {', '.join(sorted(fields))}")
    if num_classes < 1:
        raise FornetError(f"num_classes must be positive, got {num_classes}")
    return dataclasses.replace(VARIANTS[variant], num_classes=num_classes, **overrides)


def build_model(variant: str = "r101", num_classes: int = 19,
                pretrained_backbone: str | os.PathLike[str] | None = None,
                **overrides: Any) -> FoRNet:
    """Create a FoR-Net.

    Args:
        variant: one of :func:`list_variants`.
        num_classes: classifier outputs.
        pretrained_backbone: optional local file holding a torchvision ResNet ``state_dict``
            of the matching depth (``conv1.*``, ``bn1.*``, ``layerN.*``; ``fc.*`` is ignored).
            Nothing is downloaded.
        **overrides: :class:`FoRNetConfig` fields to change (e.g. ``channels=128``).
    """
    model = FoRNet(variant_config(variant, num_classes, **overrides))
    if pretrained_backbone is not None:
        load_backbone_weights(model, pretrained_backbone)
    return model


def load_backbone_weights(model: FoRNet, path: str | os.PathLike[str]) -> None:
    """Copy a torchvision ResNet ``state_dict`` file into the model's stem and layers."""
    source = read_state_dict(path)
    renamed = {}
    for key, value in source.items():
        if key.startswith("fc."):
            continue
        key = key.replace("conv1.", "stem.0.", 1) if key.startswith("conv1.") else key
        key = key.replace("bn1.", "stem.1.", 1) if key.startswith("bn1.") else key
        renamed[key] = value
    target = {k: v for k, v in model.state_dict().items()
              if k.startswith(("stem.", "layer1.", "layer2.", "layer3.", "layer4."))}
    missing = sorted(set(target) - set(renamed))
    unexpected = sorted(set(renamed) - set(target))
    misshaped = sorted(k for k in set(target) & set(renamed) if target[k].shape != renamed[k].shape)
    if missing or unexpected or misshaped:
        raise FornetError(
            f"{path} is not a torchvision ResNet state_dict matching this variant's backbone "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} mis-shaped "
            f"keys; first ones: {(missing + unexpected + misshaped)[:5]}); pass the ResNet of the "
            "same depth (resnet101 for r101, resnet18 for r18, ...)"
        )
    with torch.no_grad():
        for key, value in renamed.items():
            target[key].copy_(value)
