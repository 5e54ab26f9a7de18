"""FoR-Net configurations: the reference ``r101`` and the lighter variants.

Every variant has the same modules and checkpoint key names as the reference; only depths,
widths, strides and the branch dilations differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fornet.normalization import IMAGENET_MEAN, IMAGENET_STD
from fornet.options import OptionGroup, option

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VARIANTS", "VARIANT_NOTES", "FoRNetConfig"]

#: Output channels of a residual block per ``planes`` (torchvision's ``expansion``).
BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
REFERENCE_RATIOS = (0.10, 0.20, 0.30, 0.40)
REFERENCE_BRANCHES = ((1, 1), (3, 1), (5, 1), (7, 16))


@dataclass(frozen=True)
class BackboneSpec:
    """Shape of a ResNet backbone.

    Attributes:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50/101).
        layers: number of blocks in layer1..layer4.
        widths: planes of layer1..layer4 (torchvision: 64, 128, 256, 512); the stem has widths[0].
        dilate: for layer2..layer4, whether the stage replaces its stride 2 by dilation.
    """

    block: str = "bottleneck"
    layers: tuple[int, int, int, int] = (3, 4, 23, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    dilate: tuple[bool, bool, bool] = (False, True, True)

    @property
    def output_stride(self) -> int:
        return 32 // (2 ** sum(self.dilate))

    def stage_channels(self, stage: int) -> int:
        """Output channels of ``layer{stage}`` (1-based)."""
        return self.widths[stage - 1] * BLOCK_EXPANSION[self.block]

    def stage_stride(self, stage: int) -> int:
        """Spatial stride of ``layer{stage}``'s output relative to the input (1-based)."""
        stride = 4
        for i in range(1, stage):
            if not self.dilate[i - 1]:
                stride *= 2
        return stride


@dataclass(frozen=True)
class FoRNetConfig:
    """Everything that fixes the architecture (and so the checkpoint layout) of a FoR-Net.

    Attributes:
        backbone: the ResNet shape and which stages are dilated.
        num_classes: classifier outputs (19 for Cityscapes).
        channels: width C of the head (``trans`` output, branches, decoder).
        low_stage: backbone stage whose output feeds ``low_proj`` (1 = stride 4).
        low_channels: ``low_proj`` output channels (48 in the reference).
        ratios: Top-K ratios of the four nested masks.
        branches: ``(kernel, dilation)`` of each multi-scale branch.
        context_reduction: ``psi`` bottleneck factor (C -> C / r -> C).
        selector_reduction: selector ``body`` width factor (C -> C / r).
    """

    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    num_classes: int = 19
    channels: int = 256
    low_stage: int = 1
    low_channels: int = 48
    ratios: tuple[float, ...] = REFERENCE_RATIOS
    branches: tuple[tuple[int, int], ...] = REFERENCE_BRANCHES
    context_reduction: int = 4
    selector_reduction: int = 2

    @property
    def output_stride(self) -> int:
        """Stride of the selector grid relative to the input."""
        return self.backbone.output_stride

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form (stored in checkpoints and ONNX sidecars)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoRNetConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        bb = dict(data.pop("backbone"))
        backbone = BackboneSpec(
            block=bb["block"], layers=tuple(bb["layers"]), widths=tuple(bb["widths"]),
            dilate=tuple(bool(d) for d in bb["dilate"]),
        )
        data["ratios"] = tuple(float(r) for r in data["ratios"])
        data["branches"] = tuple((int(k), int(d)) for k, d in data["branches"])
        return cls(backbone=backbone, **data)


_OS8 = (False, True, True)

VARIANTS: dict[str, FoRNetConfig] = {
    # The published configuration: ResNet-101, output stride 8, C = 256.
    "r101": FoRNetConfig(BackboneSpec("bottleneck", (3, 4, 23, 3), dilate=_OS8)),
    "r50": FoRNetConfig(BackboneSpec("bottleneck", (3, 4, 6, 3), dilate=_OS8)),
    "r34": FoRNetConfig(BackboneSpec("basic", (3, 4, 6, 3), dilate=_OS8)),
    "r18": FoRNetConfig(BackboneSpec("basic", (2, 2, 2, 2), dilate=_OS8)),
    # Jetson real-time variant, see ``fornet.model.variants`` docs: half-width ResNet-18 at
    # output stride 16, C = 128, low-level features from layer2 (stride 8), 7x7 branch dilation
    # halved to 8 so its reach in pixels (8 * 16 * 6 = 768 px) matches the reference's.
    "lite": FoRNetConfig(
        BackboneSpec("basic", (2, 2, 2, 2), widths=(32, 64, 128, 256), dilate=(False, False, True)),
        channels=128, low_stage=2, low_channels=32,
        branches=((1, 1), (3, 1), (5, 1), (7, 8)),
    ),
}

VARIANT_NOTES: dict[str, str] = {
    "r101": "reference (paper) configuration, ResNet-101, output stride 8",
    "r50": "ResNet-50 backbone, output stride 8",
    "r34": "ResNet-34 backbone, output stride 8",
    "r18": "ResNet-18 backbone, output stride 8",
    "lite": "Jetson real time: half-width ResNet-18, output stride 16, every k <= 3840 at 1024x2048",
}


def variant_option(group: OptionGroup | None = None,
                   help: str = "architecture, for a checkpoint that does not record it") -> Any:
    """The ``--variant NAME`` field of every command that names an architecture (one of :data:`VARIANTS`)."""
    return option(None, flag="--variant", choices=tuple(VARIANTS), metavar="NAME", group=group,
                  help=f"{help} ({', '.join(VARIANTS)})")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about the model besides its weights."""

    path: str
    variant: str | None
    config: FoRNetConfig
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    train_config: dict[str, Any] = field(default_factory=dict)
