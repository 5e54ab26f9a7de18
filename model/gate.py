"""The Top-K gate: which selector cells are kept, exactly as the reference computes it.

For ``n = h * w`` cells and each ratio ``r``, ``k = min(n, max(1, round(r * n)))`` with
Python's ``round`` (banker's rounding). One ``topk`` of the largest ``k`` over the flattened
float32 selector logits gives a sorted index list; mask ``i`` marks its first ``k_i`` entries,
so every mask has exactly ``k_i`` ones per image and the masks are nested.

This module is the single PyTorch implementation of the rule; the ONNX exporter, the NumPy
reference in ``docs/ops/TopKGate.md`` and the TensorRT plugin mirror it.

Ties: the model uses ``torch.topk`` exactly as the reference implementation does, so its masks
are identical to the reference's for the same weights and input. PyTorch does not define the
order of exactly equal scores; the deployed operator (ONNX function, plugin) does: the smaller
flat cell index first. The two can only differ where selector logits tie exactly at the k-th
value, which float32 logits of real images practically never do.
"""
# ruff: noqa: TID253

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: Largest k that TensorRT's native ITopKLayer accepts.
TENSORRT_TOPK_LIMIT = 3840


def topk_counts(num_cells: int, ratios: Sequence[float]) -> tuple[int, ...]:
    """Number of kept cells per ratio for a selector grid of ``num_cells`` cells."""
    return tuple(min(num_cells, max(1, round(r * num_cells))) for r in ratios)


@torch.no_grad()
def topk_masks(sel_logit: Tensor, ratios: Sequence[float]) -> list[Tensor]:
    """Hard nested masks (``B x 1 x h x w`` float32, exactly ``k_i`` ones per image)."""
    flat = sel_logit.detach().float().flatten(1)
    counts = topk_counts(flat.shape[1], ratios)
    order = flat.topk(max(counts), dim=1).indices
    masks = []
    for k in counts:
        mask = torch.zeros_like(flat).scatter_(1, order[:, :k], 1.0)
        masks.append(mask.view(sel_logit.shape))
    return masks


class TopKGate(nn.Module):
    """Gate context features with the nested Top-K masks of the selector logit.

    ``forward(features, sel_logit)`` returns ``(gated, masks)``: ``gated[i] = features * m_i``
    and the hard masks. In training ``m_i`` is replaced by the straight-through form
    ``m_i + sigmoid(s) - stopgrad(sigmoid(s))``: the forward value is the hard mask and the
    gradient reaches the selector through the sigmoid. The module holds no parameters, so it
    adds nothing to the checkpoint; the ONNX exporter swaps it for a one-node version.
    """

    def __init__(self, ratios: Sequence[float]) -> None:
        super().__init__()
        self.ratios = tuple(float(r) for r in ratios)

    def forward(self, features: Tensor, sel_logit: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        masks = topk_masks(sel_logit, self.ratios)
        if self.training:
            soft = torch.sigmoid(sel_logit)
            surrogate = soft - soft.detach()
            gates = [m + surrogate for m in masks]
        else:
            gates = masks
        gated = [features * g.to(features.dtype) for g in gates]
        return gated, masks

    def extra_repr(self) -> str:
        return f"ratios={self.ratios}"
