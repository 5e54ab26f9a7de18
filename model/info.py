"""Size, cost and Top-K facts of a FoR-Net variant at an input size (``fornet info``).

Parameters and multiply-accumulates are measured on the real module graph with
``torch.utils.flop_counter`` on the ``meta`` device (shapes only, no arithmetic), so even
``r101`` at 1024x2048 is instant.
"""
# ruff: noqa: TID253

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fornet.errors import FornetError, RecordError
from fornet.model.config import VARIANT_NOTES
from fornet.model.fornet import FoRNet
from fornet.model.gate import TENSORRT_TOPK_LIMIT, topk_counts
from fornet.model.variants import variant_config
from fornet.records import Record


@dataclass(frozen=True)
class VariantInfo:
    """Facts about one variant at one input size."""

    variant: str
    note: str
    input_size: tuple[int, int]
    num_classes: int
    params: int
    gmacs: float
    output_stride: int
    selector_grid: tuple[int, int]
    ratios: tuple[float, ...]
    ks: tuple[int, ...]
    native_topk_ok: bool
    backbone_receptive_field: int
    branch_reach_px: tuple[int, ...]


@dataclass(frozen=True)
class VariantReport(Record):
    """``fornet info --json``: the facts of one or more variants."""

    FORMAT: ClassVar[str] = "fornet-deploy/variant-info"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy variant facts"
    FIX: ClassVar[str] = "write it again with fornet info --json"
    ERROR: ClassVar[type[RecordError]] = RecordError

    variants: tuple[VariantInfo, ...]


def _receptive_field(modules: list[nn.Module]) -> int:
    """Theoretical receptive field (pixels) of the convolution/pooling chain in ``modules`` order."""
    rf, jump = 1, 1
    for module in modules:
        if isinstance(module, nn.Conv2d | nn.MaxPool2d):
            k = module.kernel_size[0] if isinstance(module.kernel_size, tuple) else module.kernel_size
            s = module.stride[0] if isinstance(module.stride, tuple) else module.stride
            d = module.dilation[0] if isinstance(module.dilation, tuple) else module.dilation
            rf += (k - 1) * d * jump
            jump *= s
    return rf


def _backbone_chain(model: FoRNet) -> list[nn.Module]:
    chain: list[nn.Module] = list(model.stem)
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            chain += [m for name, m in block.named_children() if name.startswith("conv")]
    return chain


def variant_info(variant: str, input_size: tuple[int, int] = (1024, 2048), num_classes: int = 19) -> VariantInfo:
    """Measure ``variant`` at ``input_size`` (H, W)."""
    config = variant_config(variant, num_classes)
    h, w = input_size
    stride = config.output_stride
    if h % stride or w % stride:
        raise FornetError(f"input size {h}x{w} is not divisible by {variant}'s output stride {stride}; "
                          f"use multiples of {stride} (e.g. {h // stride * stride}x{w // stride * stride})")
    with torch.device("meta"):
        model = FoRNet(config).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.empty(1, 3, h, w))
    grid = (h // stride, w // stride)
    ks = topk_counts(grid[0] * grid[1], config.ratios)
    return VariantInfo(
        variant=variant, note=VARIANT_NOTES.get(variant, ""), input_size=(h, w), num_classes=num_classes,
        params=sum(p.numel() for p in model.parameters()),
        gmacs=counter.get_total_flops() / 2e9,
        output_stride=stride, selector_grid=grid, ratios=config.ratios, ks=ks,
        native_topk_ok=max(ks) <= TENSORRT_TOPK_LIMIT,
        backbone_receptive_field=_receptive_field(_backbone_chain(model)),
        branch_reach_px=tuple(((k - 1) * d + 1) * stride for k, d in config.branches),
    )


def format_info(info: VariantInfo) -> str:
    """Human-readable report of :func:`variant_info`."""
    h, w = info.input_size
    gate = ("TensorRT's native TopK can gate it (--gate native)" if info.native_topk_ok else
            f"k exceeds TensorRT's native TopK limit of {TENSORRT_TOPK_LIMIT}: the fornet TopKGate plugin is needed")
    lines = [
        f"variant            {info.variant}  ({info.note})",
        f"input              {h}x{w}, {info.num_classes} classes",
        f"parameters         {info.params / 1e6:.2f} M",
        f"compute            {info.gmacs:.1f} GMAC per image (convolutions, torch.utils.flop_counter)",
        f"output stride      {info.output_stride} -> selector grid {info.selector_grid[0]}x{info.selector_grid[1]}"
        f" = {info.selector_grid[0] * info.selector_grid[1]} cells",
        "top-k per ratio    " + ", ".join(f"{r:.2f}: k={k}" for r, k in zip(info.ratios, info.ks, strict=True)),
        f"gate               {gate}",
        f"receptive field    backbone {info.backbone_receptive_field} px (theoretical); branch reach "
        + ", ".join(f"{px} px" for px in info.branch_reach_px),
    ]
    return "\n".join(lines)


def format_table(infos: list[VariantInfo]) -> str:
    """Markdown table of several variants (used for the README)."""
    rows = ["| variant | params (M) | GMAC | output stride | max k | native TopK |", "|---|---|---|---|---|---|"]
    for i in infos:
        rows.append(f"| {i.variant} | {i.params / 1e6:.2f} | {i.gmacs:.1f} | {i.output_stride} | {max(i.ks)} | "
                    f"{'yes' if i.native_topk_ok else 'no (plugin)'} |")
    return "\n".join(rows)
