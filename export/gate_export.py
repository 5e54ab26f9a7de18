"""Export form of the Top-K gate: one ``fornet::TopKGate`` ONNX node.

:class:`ExportTopKGate` stands in for the model's parameter-free ``model.gate`` while the
TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) traces the model. Its
:class:`_TopKGateFunction` computes the gate eagerly (so the traced values follow the op's
semantics) and its ``symbolic`` emits the single custom node whose
contract ``docs/ops/TopKGate.md`` defines.

The TorchScript route is chosen over the dynamo exporter because it needs no registered ONNX
op schema and bakes ``ks`` in as constant attributes, which is exactly what the TensorRT
plugin's field list reads.
"""
# ruff: noqa: TID253

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from fornet.contract import TOPK_GATE
from fornet.model import FoRNet, topk_counts


class _TopKGateFunction(torch.autograd.Function):
    """``(features, scores) -> (gated_0, ..., gated_{R-1}, masks)`` as one ONNX node.

    ``forward`` computes the op's semantics eagerly from the given ``ks`` (under tracing the
    shapes are tensors, so :func:`fornet.model.topk_masks` cannot derive k itself).
    """

    @staticmethod
    def forward(ctx, features: Tensor, scores: Tensor, ratios: tuple[float, ...],  # type: ignore[override]
                ks: tuple[int, ...]) -> tuple[Tensor, ...]:
        flat = scores.flatten(1)
        # A stable descending sort breaks ties by the smaller index, as the op specifies
        # (torch.topk on CPU does not guarantee that order).
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :max(ks)]
        masks = torch.stack([torch.zeros_like(flat).scatter_(1, order[:, :k], 1.0) for k in ks], dim=1)
        masks = masks.view(scores.shape[0], len(ks), *scores.shape[2:])
        gated = [features * masks[:, i:i + 1].to(features.dtype) for i in range(len(ks))]
        return (*gated, masks)

    @staticmethod
    def symbolic(g, features, scores, ratios, ks):  # type: ignore[no-untyped-def]
        outputs = g.op(
            TOPK_GATE.qualified_name, features, scores,
            ratios_f=list(ratios), ks_i=list(ks),
            plugin_version_s=TOPK_GATE.plugin_version, plugin_namespace_s=TOPK_GATE.plugin_namespace,
            outputs=len(ks) + 1,
        )
        scores_type = scores.type()
        batch = scores_type.sizes()[0] if scores_type.sizes() else None
        for out in outputs[:-1]:
            out.setType(features.type())
        if scores_type.sizes():
            _, _, h, w = scores_type.sizes()
            outputs[-1].setType(scores_type.with_sizes([batch, len(ks), h, w]))
        return outputs


class ExportTopKGate(nn.Module):
    """Drop-in replacement for :class:`fornet.model.TopKGate` that exports as one node.

    ``forward(features, scores)`` returns ``(gated, [masks])``: the ``R`` gated feature maps and
    a one-element list holding the stacked ``B x R x h x w`` float32 masks (the export wrapper
    emits that tensor as the ``masks`` model output).
    """

    def __init__(self, ratios: Sequence[float]) -> None:
        super().__init__()
        self.ratios = tuple(float(r) for r in ratios)

    def forward(self, features: Tensor, scores: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        ks = topk_counts(int(scores.shape[-2]) * int(scores.shape[-1]), self.ratios)
        *gated, masks = _TopKGateFunction.apply(features, scores.float(), self.ratios, ks)
        return list(gated), [masks]


@contextlib.contextmanager
def export_gate(model: FoRNet) -> Iterator[FoRNet]:
    """Swap ``model.gate`` for :class:`ExportTopKGate` for the duration of the block."""
    original = model.gate
    model.gate = ExportTopKGate(original.ratios)
    try:
        yield model
    finally:
        model.gate = original
