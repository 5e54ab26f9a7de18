"""FoR-Net loss terms against independent NumPy / hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fornet.errors import FornetError
from fornet.model import build_model
from fornet.model.loss import FoRNetLoss, LossInputError, boundary_target

IGN = 255


# ---------------------------------------------------------------- NumPy references (loops, no torch)
def np_log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_ce(logits: np.ndarray, target: np.ndarray) -> float:
    logp = np_log_softmax(logits.astype(np.float64))
    total, count = 0.0, 0
    for b, y, x in np.ndindex(*target.shape):
        if target[b, y, x] != IGN:
            total -= logp[b, target[b, y, x], y, x]
            count += 1
    return total / max(count, 1)


def np_dice(logits: np.ndarray, target: np.ndarray) -> float:
    probs = np.exp(np_log_softmax(logits.astype(np.float64)))
    classes = logits.shape[1]
    valid = target != IGN
    onehot = np.zeros_like(probs)
    for b, y, x in zip(*np.nonzero(valid), strict=True):
        onehot[b, target[b, y, x], y, x] = 1.0
    probs = probs * valid[:, None]
    losses = []
    for c in range(classes):
        if onehot[:, c].sum() == 0:
            continue
        dice = (2 * (probs[:, c] * onehot[:, c]).sum() + 1) / (probs[:, c].sum() + onehot[:, c].sum() + 1)
        losses.append(1 - dice)
    return float(np.mean(losses)) if losses else 0.0


def np_boundary_target(label: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    bsz, height, width = label.shape
    gh, gw = grid
    boundary = np.zeros(label.shape, dtype=bool)
    for b, y, x in np.ndindex(*label.shape):
        if label[b, y, x] == IGN:
            continue
        window = label[b, max(0, y - 1):y + 2, max(0, x - 1):x + 2]
        values = window[window != IGN]
        boundary[b, y, x] = values.max() != values.min()
    cell_b = np.zeros((bsz, gh, gw))
    weight = np.zeros((bsz, gh, gw))
    for b, i, j in np.ndindex(bsz, gh, gw):
        rows = slice(math.floor(i * height / gh), math.ceil((i + 1) * height / gh))
        cols = slice(math.floor(j * width / gw), math.ceil((j + 1) * width / gw))
        cell_b[b, i, j] = boundary[b, rows, cols].any()
        weight[b, i, j] = (label[b, rows, cols] != IGN).any()
    target = cell_b.copy()
    for b, i, j in np.ndindex(bsz, gh, gw):
        # distance in the chessboard metric to the nearest boundary cell
        near = [max(abs(i - p), abs(j - q)) for p, q in zip(*np.nonzero(cell_b[b]), strict=True)]
        if near:
            d = min(near)
            target[b, i, j] = {0: 1.0, 1: 0.5, 2: 0.25}.get(d, 0.0)
    return target, weight


def np_bce(logit: np.ndarray, target: np.ndarray, weight: np.ndarray) -> float:
    sig = 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))
    bce = -(target * np.log(sig) + (1 - target) * np.log(1 - sig))
    return float((bce * weight).sum() / max(weight.sum(), 1.0))


def random_case(seed: int, bsz: int = 2, classes: int = 5, hw: tuple[int, int] = (12, 16),
                grid: tuple[int, int] = (3, 4), ignore_frac: float = 0.15):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (bsz, classes, *hw)).astype(np.float32)
    # blocky labels so that boundaries are lines, not noise
    coarse = rng.integers(0, classes - 1, (bsz, hw[0] // 4 + 1, hw[1] // 4 + 1))
    label = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :hw[0], :hw[1]].astype(np.int64)
    label[rng.random(label.shape) < ignore_frac] = IGN
    sel = rng.normal(0, 1.5, (bsz, 1, *grid)).astype(np.float32)
    return logits, label, sel


def outputs_of(logits: np.ndarray, sel: np.ndarray, requires_grad: bool = False):
    lt = torch.tensor(logits, requires_grad=requires_grad)
    st = torch.tensor(sel, requires_grad=requires_grad)
    return (lt, st, [])


# ---------------------------------------------------------------- boundary target
def test_boundary_target_hand_example() -> None:
    # Two classes split by a vertical edge between columns 1 and 2; grid equals the image, so
    # columns 1 and 2 are boundary cells, 0 and 3 their first ring, 4 the second ring.
    label = torch.tensor([[[0, 0, 1, 1, 1, 1, 1]] * 3])
    target, weight = boundary_target(label, (3, 7))
    expected_row = [0.5, 1.0, 1.0, 0.5, 0.25, 0.0, 0.0]
    assert target.shape == (1, 1, 3, 7)
    np.testing.assert_array_equal(target[0, 0].numpy(), np.array([expected_row] * 3))
    np.testing.assert_array_equal(weight.numpy(), np.ones((1, 1, 3, 7)))


def test_ignored_pixels_create_no_boundary_and_get_zero_weight() -> None:
    label = torch.full((1, 8, 8), 3)
    label[:, :, 4:] = IGN  # right half not labelled: the 3 | ignore edge is no boundary
    target, weight = boundary_target(label, (2, 2))
    assert target.sum() == 0
    np.testing.assert_array_equal(weight[0, 0].numpy(), [[1, 0], [1, 0]])


def test_image_border_is_not_a_boundary() -> None:
    target, weight = boundary_target(torch.full((2, 5, 9), 7), (5, 9))
    assert target.sum() == 0 and weight.min() == 1


@pytest.mark.parametrize(("seed", "hw", "grid"), [(0, (12, 16), (3, 4)), (1, (13, 17), (4, 5)),
                                                  (2, (16, 16), (16, 16)), (3, (20, 9), (7, 3))])
def test_boundary_target_matches_numpy(seed: int, hw: tuple[int, int], grid: tuple[int, int]) -> None:
    _, label, _ = random_case(seed, hw=hw, grid=grid)
    target, weight = boundary_target(torch.from_numpy(label), grid)
    exp_target, exp_weight = np_boundary_target(label, grid)
    np.testing.assert_array_equal(target[:, 0].numpy(), exp_target)
    np.testing.assert_array_equal(weight[:, 0].numpy(), exp_weight)


# ---------------------------------------------------------------- individual terms
@pytest.mark.parametrize("seed", [0, 1])
def test_terms_match_numpy(seed: int) -> None:
    logits, label, sel = random_case(seed)
    total, parts = FoRNetLoss()(outputs_of(logits, sel), torch.from_numpy(label))
    exp_t, exp_w = np_boundary_target(label, sel.shape[-2:])
    ce, dice, sel_l = np_ce(logits, label), np_dice(logits, label), np_bce(sel[:, 0], exp_t, exp_w)
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert parts["dice"].item() == pytest.approx(dice, rel=1e-5)
    assert parts["sel"].item() == pytest.approx(sel_l, rel=1e-5)
    assert total.item() == pytest.approx(ce + dice + 0.5 * sel_l, rel=1e-5)


def test_term_weights() -> None:
    logits, label, sel = random_case(4)
    loss = FoRNetLoss(ce_weight=2.0, dice_weight=0.0, sel_weight=3.0)
    total, parts = loss(outputs_of(logits, sel), torch.from_numpy(label))
    assert total.item() == pytest.approx(2 * parts["ce"].item() + 3 * parts["sel"].item(), rel=1e-6)


def test_dice_only_counts_present_classes() -> None:
    # Perfect, confident prediction of the present classes -> Dice close to 0 even though
    # classes 2..4 never occur (they would add ~1 each if they were averaged in).
    label = np.array([[[0, 0, 1, 1]]])
    logits = np.full((1, 5, 1, 4), -30.0, dtype=np.float32)
    logits[0, 0, 0, :2] = 30.0
    logits[0, 1, 0, 2:] = 30.0
    _, parts = FoRNetLoss()(outputs_of(logits, np.zeros((1, 1, 1, 1), np.float32)), torch.from_numpy(label))
    assert parts["dice"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["dice"].item() == pytest.approx(np_dice(logits, label), abs=1e-6)


def test_uint8_labels_are_accepted() -> None:
    logits, label, sel = random_case(5)
    a, _ = FoRNetLoss()(outputs_of(logits, sel), torch.from_numpy(label))
    b, _ = FoRNetLoss()(outputs_of(logits, sel), torch.from_numpy(label.astype(np.uint8)))
    assert a.item() == pytest.approx(b.item())


def test_all_ignored_batch_gives_zero_and_finite_gradients() -> None:
    logits, _, sel = random_case(6)
    label = np.full((2, 12, 16), IGN)
    outputs = outputs_of(logits, sel, requires_grad=True)
    total, parts = FoRNetLoss(ohem=True)(outputs, torch.from_numpy(label))
    assert total.item() == 0.0 and all(v.item() == 0.0 for v in parts.values())
    total.backward()
    assert torch.isfinite(outputs[0].grad).all() and torch.isfinite(outputs[1].grad).all()


# ---------------------------------------------------------------- OHEM
@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 10), (0.3, 50), (0.9, 0), (0.7, 10_000)])
def test_ohem_matches_numpy(thresh: float, min_kept: int) -> None:
    logits, label, sel = random_case(7)
    _, parts = FoRNetLoss(ohem=True, ohem_thresh=thresh, ohem_min_kept=min_kept)(
        outputs_of(logits, sel), torch.from_numpy(label))
    logp = np_log_softmax(logits.astype(np.float64))
    pix = [(-logp[b, label[b, y, x], y, x]) for b, y, x in np.ndindex(*label.shape) if label[b, y, x] != IGN]
    pix = np.sort(np.array(pix))[::-1]  # hardest first
    hard = int((np.exp(-pix) < thresh).sum())
    kept = max(hard, min(min_kept, pix.size))
    assert parts["ce"].item() == pytest.approx(pix[:kept].mean(), rel=1e-5)


def test_ohem_with_everything_kept_equals_plain_ce() -> None:
    logits, label, sel = random_case(8)
    outputs, target = outputs_of(logits, sel), torch.from_numpy(label)
    _, plain = FoRNetLoss()(outputs, target)
    _, ohem = FoRNetLoss(ohem=True, ohem_thresh=1.0, ohem_min_kept=0)(outputs, target)
    assert ohem["ce"].item() == pytest.approx(plain["ce"].item(), rel=1e-6)


# ---------------------------------------------------------------- straight-through estimator
@pytest.mark.parametrize(("training", "expect_grad"), [(True, True), (False, False)])
def test_gradient_reaches_selector_through_the_gate(training: bool, expect_grad: bool) -> None:
    """With the selector term switched off, the head only learns through the straight-through mask."""
    torch.manual_seed(0)
    model = build_model("lite", num_classes=4).train(training)
    x = torch.randn(2, 3, 64, 64)
    label = torch.randint(0, 4, (2, 64, 64))
    total, _ = FoRNetLoss(sel_weight=0.0)(model(x), label)
    total.backward()
    grad = model.selector.head.weight.grad
    has_grad = grad is not None and float(grad.abs().sum()) > 0
    assert has_grad == expect_grad


def test_selector_term_gives_head_gradient() -> None:
    torch.manual_seed(0)
    model = build_model("lite", num_classes=4).train()
    label = torch.randint(0, 4, (2, 64, 64))
    total, _ = FoRNetLoss(ce_weight=0.0, dice_weight=0.0)(model(torch.randn(2, 3, 64, 64)), label)
    total.backward()
    assert float(model.selector.head.bias.grad.abs()) > 0


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_typed_errors() -> None:
    logits, label, sel = random_case(9)
    loss = FoRNetLoss()
    with pytest.raises(LossInputError, match="do not match"):
        loss(outputs_of(logits, sel), torch.from_numpy(label[:, :-1]))
    with pytest.raises(LossInputError, match="integer trainIds"):
        loss(outputs_of(logits, sel), torch.from_numpy(label).float())
    bad = label.copy()
    bad[0, 0, 0] = 33  # a labelId, not a trainId
    with pytest.raises(LossInputError, match=r"outside 0\.\.4"):
        loss(outputs_of(logits, sel), torch.from_numpy(bad))
    with pytest.raises(LossInputError, match="B x 1 x h x w"):
        loss(outputs_of(logits, sel[:, 0]), torch.from_numpy(label))
    with pytest.raises(LossInputError, match="B x H x W"):
        boundary_target(torch.from_numpy(label)[:, None], (3, 4))
    with pytest.raises(FornetError, match="ohem_thresh"):
        FoRNetLoss(ohem=True, ohem_thresh=0.0)
