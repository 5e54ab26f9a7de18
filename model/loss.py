"""The FoR-Net training objective: ``L = L_CE + 1.0 * L_Dice + 0.5 * L_sel``.

Each term follows the reference implementation's description (``docs`` of the project,
"Training objective of the reference"):

* ``L_CE``: pixel cross-entropy summed over valid pixels (target != ``ignore_index``) and divided
  by their number. With ``ohem=True`` it is replaced by online hard example mining (see
  :func:`ohem_cross_entropy`), an option the reference does not use.
* ``L_Dice``: multi-class soft Dice over valid pixels of the whole batch (see :func:`dice_loss`).
* ``L_sel``: binary cross-entropy with logits between the selector logit and the soft boundary
  band of :func:`boundary_target`, weighted by its validity weight and divided by the weight sum.

When a batch has no valid pixel at all, every term is zero (not NaN) and still part of the
autograd graph, so a training step on such a batch changes nothing.
"""
# ruff: noqa: TID253

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fornet.calibration.labels import IGNORE_INDEX
from fornet.model.errors import ModelError


class LossInputError(ModelError, ValueError):
    """Model outputs and targets that the loss cannot be computed on."""


def _valid_mask(target: Tensor, ignore_index: int) -> Tensor:
    return target != ignore_index


def _max3x3(x: Tensor) -> Tensor:
    """3x3 max filter, stride 1; the border is padded with -inf (it never wins)."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


@torch.no_grad()
def boundary_target(label: Tensor, grid_hw: Sequence[int],
                    ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """Soft boundary band on the selector grid and the per-cell loss weight.

    Args:
        label: ``B x H x W`` integer trainIds (``ignore_index`` = not labelled).
        grid_hw: ``(h, w)`` of the selector logit.
        ignore_index: label value of ignored pixels.

    Returns:
        ``(target, weight)``, both ``B x 1 x h x w`` float32.

    Interpretation of the reference's wording, step by step:

    1. Boundary pixels (input resolution): the 3x3 maximum and minimum of the label map are
       taken over the *valid* pixels of each window only, so ignored pixels never create a
       boundary, and outside the image counts as "no pixel" (the image border is no boundary).
       A pixel is a boundary when it is valid itself and that maximum differs from that minimum.
       Ignored pixels are never boundaries.
    2. ``b`` = adaptive max pooling of the 0/1 boundary map to ``grid_hw``
       (``torch.nn.functional.adaptive_max_pool2d``: cell ``i`` covers rows
       ``floor(i*H/h) .. ceil((i+1)*H/h) - 1``, likewise columns), so a cell is 1 when any of
       its pixels is a boundary.
    3. ``target = max(b, 0.5 * d1, 0.25 * d2)`` element-wise, where ``d1`` is ``b`` dilated by a
       3x3 max pool (stride 1, padding 1) and ``d2`` is ``d1`` dilated once more: boundary cells
       get 1, their 8 neighbours 0.5, the next ring (5x5) 0.25, everything else 0.
    4. ``weight`` = 1 for cells that hold at least one valid pixel, else 0 (same pooling as 2).
    """
    if label.dim() != 3:
        raise LossInputError(f"label must be B x H x W, got shape {tuple(label.shape)}; "
                             "drop the channel dimension (label[:, 0]) or add a batch dimension")
    grid = (int(grid_hw[0]), int(grid_hw[1]))
    valid = _valid_mask(label, ignore_index).unsqueeze(1)
    values = label.unsqueeze(1).float()
    neg_inf = torch.tensor(float("-inf"), device=label.device)
    window_max = _max3x3(torch.where(valid, values, neg_inf))
    window_min = -_max3x3(torch.where(valid, -values, neg_inf))
    boundary = (valid & (window_max > window_min)).float()

    b = F.adaptive_max_pool2d(boundary, grid)
    d1 = _max3x3(b)
    d2 = _max3x3(d1)
    target = torch.maximum(b, torch.maximum(0.5 * d1, 0.25 * d2))
    weight = F.adaptive_max_pool2d(valid.float(), grid)
    return target, weight


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Pixel cross-entropy summed over valid pixels / number of valid pixels (0 if none)."""
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    count = _valid_mask(target, ignore_index).sum()
    return total / count.clamp(min=1)


def ohem_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX,
                       thresh: float = 0.7, min_kept: int = 100_000) -> Tensor:
    """Cross-entropy over the hard valid pixels only, averaged over the kept pixels.

    A valid pixel is hard when the softmax probability of its target class is below
    ``thresh``. If fewer than ``min_kept`` pixels are hard, the ``min_kept`` pixels with the
    lowest target probability are kept instead (all valid pixels when there are fewer), so
    the kept count is ``max(#hard, min(min_kept, #valid))``.
    """
    per_pixel = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
    losses = per_pixel[_valid_mask(target, ignore_index)]
    if losses.numel() == 0:
        return per_pixel.sum() * 0.0
    # The target-class probability is exp(-CE), so "lowest probability" = "largest CE".
    hard = int((torch.exp(-losses.detach()) < thresh).sum())
    kept = max(hard, min(int(min_kept), losses.numel()))
    return losses.topk(kept, sorted=False).values.mean()


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Multi-class soft Dice loss over the valid pixels of the whole batch.

    With softmax probabilities ``p`` and one-hot targets ``y`` restricted to valid pixels, for
    each class ``c``: ``dice_c = (2 * sum(p_c * y_c) + 1) / (sum(p_c) + sum(y_c) + 1)``.
    The loss is the mean of ``1 - dice_c`` over the classes that occur in the batch's valid
    targets (0 if none does). Sums run over all images of the batch together.
    """
    num_classes = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1)
    valid = _valid_mask(target, ignore_index)
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    target_prob = probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)[valid]
    classes = target[valid]
    intersection = torch.zeros(num_classes, device=logits.device).index_add(0, classes, target_prob)
    prob_sum = (probs * valid.unsqueeze(1)).sum(dim=(0, 2, 3))
    target_sum = torch.bincount(classes, minlength=num_classes).float()
    dice = (2.0 * intersection + 1.0) / (prob_sum + target_sum + 1.0)
    present = target_sum > 0
    if not bool(present.any()):
        return probs.sum() * 0.0
    return (1.0 - dice[present]).mean()


def selector_loss(sel_logit: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Weighted BCE-with-logits of the selector against :func:`boundary_target`.

    Summed over cells with the validity weight and divided by the weight sum (0 if no cell has
    a valid pixel).
    """
    soft, weight = boundary_target(target, sel_logit.shape[-2:], ignore_index)
    bce = F.binary_cross_entropy_with_logits(sel_logit.float(), soft, weight=weight, reduction="sum")
    return bce / weight.sum().clamp(min=1.0)


class FoRNetLoss(nn.Module):
    """``ce_weight * L_CE + dice_weight * L_Dice + sel_weight * L_sel`` (reference: 1, 1, 0.5).

    ``forward(outputs, target)`` takes the model's ``(logits, sel_logit, masks)`` and
    ``B x H x W`` integer trainIds at the logits' resolution and returns ``(total, parts)``,
    where ``parts`` holds the detached unweighted terms ``"ce"``, ``"dice"`` and ``"sel"``.
    All terms are computed in float32, also when the model ran under autocast.

    Args:
        ce_weight, dice_weight, sel_weight: term weights.
        ignore_index: label value excluded from every term.
        ohem: replace ``L_CE`` by :func:`ohem_cross_entropy` (not in the reference).
        ohem_thresh, ohem_min_kept: its hardness threshold and minimum kept pixel count.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, sel_weight: float = 0.5,
                 ignore_index: int = IGNORE_INDEX, ohem: bool = False, ohem_thresh: float = 0.7,
                 ohem_min_kept: int = 100_000) -> None:
        super().__init__()
        if not 0.0 < ohem_thresh <= 1.0:
            raise LossInputError(f"ohem_thresh must be in (0, 1], got {ohem_thresh}; 0.7 is usual")
        if ohem_min_kept < 0:
            raise LossInputError(f"ohem_min_kept must be >= 0, got {ohem_min_kept}")
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.sel_weight = float(sel_weight)
        self.ignore_index = int(ignore_index)
        self.ohem = bool(ohem)
        self.ohem_thresh = float(ohem_thresh)
        self.ohem_min_kept = int(ohem_min_kept)

    def _check(self, logits: Tensor, sel_logit: Tensor, target: Tensor) -> None:
        if logits.dim() != 4 or target.dim() != 3 or logits.shape[-2:] != target.shape[-2:] \
                or logits.shape[0] != target.shape[0]:
            raise LossInputError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} do not match; expected "
                "B x C x H x W logits and B x H x W labels of the same size (crop image and label together)"
            )
        if sel_logit.dim() != 4 or sel_logit.shape[:2] != (logits.shape[0], 1):
            raise LossInputError(f"selector logit must be B x 1 x h x w, got {tuple(sel_logit.shape)}")
        if target.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
            raise LossInputError(f"target must hold integer trainIds, got dtype {target.dtype}; "
                                 "convert with target.long()")
        valid = target[_valid_mask(target, self.ignore_index)]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= logits.shape[1]):
            raise LossInputError(
                f"target holds label values outside 0..{logits.shape[1] - 1} (found "
                f"{int(valid.min())}..{int(valid.max())}) besides the ignore value {self.ignore_index}; "
                "map labels to trainIds (labelIds 0..33 are not trainIds) or fix num_classes"
            )

    def forward(self, outputs: tuple[Tensor, Tensor, list[Tensor]],
                target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        logits, sel_logit = outputs[0], outputs[1]
        self._check(logits, sel_logit, target)
        target = target.long()
        if self.ohem:
            ce = ohem_cross_entropy(logits, target, self.ignore_index, self.ohem_thresh, self.ohem_min_kept)
        else:
            ce = cross_entropy(logits, target, self.ignore_index)
        dice = dice_loss(logits, target, self.ignore_index)
        sel = selector_loss(sel_logit, target, self.ignore_index)
        total = self.ce_weight * ce + self.dice_weight * dice + self.sel_weight * sel
        parts = {"ce": ce.detach(), "dice": dice.detach(), "sel": sel.detach()}
        return total, parts

    def extra_repr(self) -> str:
        ohem = f", ohem(thresh={self.ohem_thresh}, min_kept={self.ohem_min_kept})" if self.ohem else ""
        return (f"ce_weight={self.ce_weight}, dice_weight={self.dice_weight}, "
                f"sel_weight={self.sel_weight}, ignore_index={self.ignore_index}{ohem}")
