"""The PyTorch FoR-Net: reference layout, forward semantics, the gate, variants."""

from __future__ import annotations

import itertools

import pytest
import torch

from fornet.errors import FornetError
from fornet.model import (
    TopKGate,
    build_model,
    list_variants,
    topk_counts,
    topk_masks,
)
from tests.helpers.functional_reference import reference_forward
from tests.helpers.model_utils import realistic_model

# Shapes from the reference's state-dict table (C = 256, 19 classes).
REFERENCE_SHAPES = {
    "stem.0.weight": (64, 3, 7, 7),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer3.22.conv3.weight": (1024, 256, 1, 1),
    "layer4.2.bn3.running_var": (2048,),
    "trans.0.weight": (256, 2048, 1, 1),
    "selector.body.0.weight": (128, 256, 3, 3),
    "selector.head.weight": (1, 128, 1, 1),
    "selector.head.bias": (1,),
    "context.psi.0.weight": (64, 256, 1, 1),
    "context.psi.2.weight": (256, 64, 1, 1),
    "branches.0.0.weight": (256, 256, 1, 1),
    "branches.1.0.weight": (256, 256, 3, 3),
    "branches.2.0.weight": (256, 256, 5, 5),
    "branches.3.0.weight": (256, 256, 7, 7),
    "low_proj.0.weight": (48, 256, 1, 1),
    "decoder.0.0.weight": (256, 304, 3, 3),
    "decoder.1.0.weight": (256, 256, 3, 3),
    "classifier.weight": (19, 256, 1, 1),
    "classifier.bias": (19,),
}


def test_r101_state_dict_matches_reference_layout() -> None:
    with torch.device("meta"):
        sd = build_model("r101").state_dict()
    assert len(sd) == 686
    assert sum(t.numel() for t in sd.values() if t.is_floating_point()) == 50_278_228
    for key, shape in REFERENCE_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("gate") for k in sd)


def test_list_variants_and_unknown_variant() -> None:
    assert list_variants() == ["r101", "r50", "r34", "r18", "lite"]
    with pytest.raises(FornetError, match=r"unknown variant 'r152'.*r101"):
        build_model("r152")
    with pytest.raises(FornetError, match="unknown model option"):
        build_model("r18", widht=3)


def test_overrides_and_num_classes() -> None:
    model = build_model("r18", num_classes=7, channels=128)
    assert model.classifier.weight.shape == (7, 128, 1, 1)
    assert model.trans[0].weight.shape == (128, 512, 1, 1)


@pytest.mark.parametrize(("variant", "size"), [("r18", (64, 96)), ("lite", (64, 128)), ("r101", (48, 64))])
def test_forward_matches_independent_functional_reference(variant: str, size: tuple[int, int]) -> None:
    model = realistic_model(variant, seed=3)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    plans = {"lite": ((1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 2))}
    kwargs = {}
    if variant in plans:
        kwargs = {"stage_plan": plans[variant], "branch_dilations": (1, 1, 1, 8), "low_stage": 2}
    with torch.no_grad():
        logits, sel, masks = model(x)
        ref_logits, ref_sel, ref_masks = reference_forward(model.state_dict(), x, **kwargs)
    assert logits.shape == (2, 19, *size) and logits.dtype == torch.float32
    assert sel.shape == ref_sel.shape
    torch.testing.assert_close(sel, ref_sel, atol=1e-5, rtol=0)
    for m, rm in zip(masks, ref_masks, strict=True):
        assert torch.equal(m, rm)
    assert (logits - ref_logits).abs().max().item() < 1e-4


def test_topk_counts_use_bankers_rounding() -> None:
    # 0.1 * 25 = 2.5 rounds to 2 (banker's), 0.3 * 25 = 7.5 rounds to 8.
    assert topk_counts(25, (0.1, 0.3)) == (2, 8)
    assert topk_counts(32768, (0.1, 0.2, 0.3, 0.4)) == (3277, 6554, 9830, 13107)
    assert topk_counts(3, (0.01, 1.5)) == (1, 3)


def test_masks_exact_count_and_nested() -> None:
    scores = torch.randn(3, 1, 7, 9, generator=torch.Generator().manual_seed(0))
    masks = topk_masks(scores, (0.1, 0.2, 0.3, 0.4))
    ks = topk_counts(63, (0.1, 0.2, 0.3, 0.4))
    for m, k in zip(masks, ks, strict=True):
        assert m.shape == scores.shape
        assert m.sum(dim=(1, 2, 3)).tolist() == [k] * 3
    for small, big in itertools.pairwise(masks):
        assert torch.all(small <= big)
    # the kept cells are the highest-scoring ones
    flat = scores.flatten(1)
    kth = flat.sort(dim=1, descending=True).values[:, ks[0] - 1]
    kept = masks[0].flatten(1).bool()
    assert torch.all(flat[kept].view(3, -1) >= kth[:, None])


def test_masks_exact_count_even_with_ties() -> None:
    scores = torch.zeros(2, 1, 4, 5)
    for m, k in zip(topk_masks(scores, (0.1, 0.5)), (2, 10), strict=True):
        assert m.sum(dim=(1, 2, 3)).tolist() == [k, k]


def test_straight_through_forward_is_hard_and_gradient_reaches_selector() -> None:
    gate = TopKGate((0.25, 0.5)).train()
    feats = torch.randn(1, 3, 2, 4)
    scores = torch.randn(1, 1, 2, 4, requires_grad=True)
    gated, masks = gate(feats, scores)
    for g, m in zip(gated, masks, strict=True):
        torch.testing.assert_close(g, feats * m)
    sum(g.sum() for g in gated).backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0
    gate.eval()
    scores.grad = None
    gated, _ = gate(feats, scores)
    assert not any(g.requires_grad for g in gated)


def test_training_step_updates_selector_through_the_gate() -> None:
    model = build_model("lite").train()
    logits, _, _ = model(torch.randn(2, 3, 64, 64))
    logits.mean().backward()
    assert model.selector.head.weight.grad is not None
    assert model.selector.head.weight.grad.abs().sum() > 0


def test_selector_head_and_logits_stay_float32_under_autocast() -> None:
    model = realistic_model("lite")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, sel, masks = model(torch.randn(1, 3, 64, 64))
    assert sel.dtype == torch.float32
    assert logits.dtype == torch.float32
    assert all(m.dtype == torch.float32 for m in masks)


def test_lite_variant_fits_the_jetson_budget() -> None:
    from fornet.model.info import variant_info

    info = variant_info("lite", (1024, 2048))
    assert info.params <= 5_000_000
    assert info.gmacs <= 60
    assert info.native_topk_ok
