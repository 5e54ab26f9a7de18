"""NumPy reference implementation of the ``fornet::TopKGate`` operator.

This is the executable specification that ``docs/ops/TopKGate.md`` describes and that the
ONNX function body, the PyTorch model and the TensorRT plugin kernel are tested against.

Selection rule: per image, order the ``h * w`` selector scores by value, largest first, and
among equal values by flat (row-major) cell index, smallest first; mask ``i`` keeps the first
``ks[i]`` cells of that order. Masks are therefore nested and hold exactly ``ks[i]`` ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def topk_gate_reference(features: np.ndarray, scores: np.ndarray,
                        ks: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Apply the gate.

    Args:
        features: ``B x C x h x w`` float32 or float16 context features.
        scores: ``B x 1 x h x w`` float32 selector logits.
        ks: kept cells per mask, non-decreasing, each in ``[1, h * w]``.

    Returns:
        ``(gated, masks)``: ``gated[i] = features * mask_i`` (features' dtype) and the masks as
        one ``B x len(ks) x h x w`` float32 array.
    """
    if scores.ndim != 4 or scores.shape[1] != 1:
        raise ValueError(f"scores must be B x 1 x h x w, got {scores.shape}")
    if features.shape[0] != scores.shape[0] or features.shape[2:] != scores.shape[2:]:
        raise ValueError(f"features {features.shape} and scores {scores.shape} disagree")
    batch, _, h, w = scores.shape
    n = h * w
    if any(not 1 <= k <= n for k in ks) or list(ks) != sorted(ks):
        raise ValueError(f"ks must be non-decreasing values in [1, {n}], got {list(ks)}")
    flat = scores.reshape(batch, n).astype(np.float32)
    masks = np.zeros((batch, len(ks), n), dtype=np.float32)
    for b in range(batch):
        # lexsort sorts by the last key first: value descending, then index ascending.
        order = np.lexsort((np.arange(n), -flat[b]))
        for i, k in enumerate(ks):
            masks[b, i, order[:k]] = 1.0
    masks = masks.reshape(batch, len(ks), h, w)
    gated = [features * masks[:, i:i + 1].astype(features.dtype) for i in range(len(ks))]
    return gated, masks
