"""The FoR-Net module: backbone -> selector -> nested Top-K gate -> multi-scale branches -> decoder."""
# ruff: noqa: TID253

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fornet.model.config import CheckpointInfo, FoRNetConfig
from fornet.model.gate import TopKGate
from fornet.model.resnet import make_stages, make_stem


def float32_region(t: Tensor) -> contextlib.AbstractContextManager[object]:
    """A context that turns autocast off for ``t``'s device (no-op where autocast does not exist)."""
    if t.device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm + ReLU, keys ``.0`` / ``.1``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Selector(nn.Module):
    """Per-cell importance logit: ``body`` (3x3 ConvBNReLU, C -> C/2) then ``head`` (1x1, -> 1).

    The head runs in float32 even under autocast: half precision makes many logits tie, and a
    tie at the k-th value would make the kept set ambiguous.
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.body = conv_bn_relu(channels, hidden, 3)
        self.head = nn.Conv2d(hidden, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.body(x)
        with float32_region(hidden):
            return self.head(hidden.float())


class GlobalContext(nn.Module):
    """``F + psi(GAP(F))`` with ``psi`` = 1x1 conv (C -> C/r), ReLU, 1x1 conv (C/r -> C)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.psi = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.psi(F.adaptive_avg_pool2d(x, 1))


class FoRNet(nn.Module):
    """FoR-Net with the reference module names (``stem``, ``layer1``..``layer4``, ``trans``,
    ``selector``, ``context``, ``branches``, ``low_proj``, ``decoder``, ``classifier``).

    ``forward(x)`` takes a normalised ``B x 3 x H x W`` RGB batch and returns
    ``(logits, sel_logit, masks)``: float32 logits at the input size, the float32 selector logit
    on the output-stride grid (``B x 1 x h x w``) and the four nested hard masks (same shape).
    """

    #: Set by :func:`fornet.model.load_model`: what the checkpoint said besides the weights.
    checkpoint_info: CheckpointInfo | None

    def __init__(self, config: FoRNetConfig) -> None:
        super().__init__()
        self.config = config
        self.checkpoint_info = None
        spec = config.backbone
        c = config.channels
        self.stem = make_stem(spec)
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages(spec)
        self.trans = conv_bn_relu(spec.stage_channels(4), c, 1)
        self.selector = Selector(c, config.selector_reduction)
        self.gate = TopKGate(config.ratios)
        self.context = GlobalContext(c, config.context_reduction)
        self.branches = nn.ModuleList(conv_bn_relu(c, c, k, d) for k, d in config.branches)
        self.low_proj = conv_bn_relu(spec.stage_channels(config.low_stage), config.low_channels, 1)
        self.decoder = nn.Sequential(
            conv_bn_relu(c + config.low_channels, c, 3), conv_bn_relu(c, c, 3)
        )
        self.classifier = nn.Conv2d(c, config.num_classes, 1)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        stages = []
        out = self.stem(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            out = layer(out)
            stages.append(out)
        low = stages[self.config.low_stage - 1]

        feat = self.trans(out)
        sel_logit = self.selector(feat)
        gated, masks = self.gate(self.context(feat), sel_logit)
        agg = feat
        for branch, features in zip(self.branches, gated, strict=True):
            agg = agg + branch(features)

        agg = F.interpolate(agg, size=low.shape[-2:], mode="bilinear", align_corners=False)
        dec = self.decoder(torch.cat([agg, self.low_proj(low)], dim=1))
        logits = self.classifier(dec)
        with float32_region(logits):
            logits = F.interpolate(logits.float(), size=x.shape[-2:], mode="bilinear",
                                   align_corners=False)
        return logits, sel_logit, masks
