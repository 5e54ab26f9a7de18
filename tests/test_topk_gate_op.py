"""The fornet::TopKGate op: its ONNX function body and its PyTorch export form vs the NumPy reference."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

from fornet.export.gate_export import ExportTopKGate, export_gate
from fornet.export.onnx_function import inline_gate, make_gate_model, strip_gate_function
from fornet.export.topk_gate_reference import topk_gate_reference
from fornet.model import build_model, topk_counts

RATIOS = (0.1, 0.2, 0.3, 0.4)


def _run(model: onnx.ModelProto, features: np.ndarray, scores: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": features, "scores": scores})


def _brute_force_masks(scores: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """Independent oracle: rank every cell by (greater scores, then equal scores at smaller index)."""
    batch, _, h, w = scores.shape
    flat = scores.reshape(batch, -1)
    n = flat.shape[1]
    out = np.zeros((batch, len(ks), n), np.float32)
    for b in range(batch):
        for j in range(n):
            rank = int((flat[b] > flat[b, j]).sum() + (flat[b, :j] == flat[b, j]).sum())
            for i, k in enumerate(ks):
                out[b, i, j] = rank < k
    return out.reshape(batch, len(ks), h, w)


@pytest.fixture(scope="module")
def tie_case() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(2, 1, 6, 10)).astype(np.float32)  # many ties at every k
    features = rng.standard_normal((2, 5, 6, 10)).astype(np.float32)
    return features, scores, topk_counts(60, RATIOS)


def test_reference_matches_brute_force_on_ties(tie_case):
    features, scores, ks = tie_case
    _, masks = topk_gate_reference(features, scores, ks)
    np.testing.assert_array_equal(masks, _brute_force_masks(scores, ks))


@pytest.mark.parametrize("inline", [False, True], ids=["function", "inlined"])
def test_function_body_equals_reference_with_ties(tie_case, inline):
    features, scores, ks = tie_case
    model = make_gate_model(RATIOS, ks, features.shape)
    if inline:
        model = inline_gate(model)
        assert {n.op_type for n in model.graph.node}.isdisjoint({"TopKGate", "CastLike"})
    onnx.checker.check_model(model, full_check=True)
    *gated, masks = _run(model, features, scores)
    ref_gated, ref_masks = topk_gate_reference(features, scores, ks)
    np.testing.assert_array_equal(masks, ref_masks)
    for got, want in zip(gated, ref_gated, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ks", [(1, 1, 2, 2), (3, 7, 20, 48), (48, 48, 48, 48)])
def test_exact_counts_and_nesting(ks):
    rng = np.random.default_rng(sum(ks))
    scores = rng.standard_normal((3, 1, 6, 8)).astype(np.float32)
    features = rng.standard_normal((3, 2, 6, 8)).astype(np.float32)
    *_, masks = _run(make_gate_model(RATIOS, ks, features.shape), features, scores)
    np.testing.assert_array_equal(masks.sum(axis=(2, 3)), np.tile(np.array(ks, np.float32), (3, 1)))
    assert np.all(np.diff(masks, axis=1) >= 0), "masks must be nested"
    np.testing.assert_array_equal(masks, _brute_force_masks(scores, ks))


def test_fp16_features_keep_type_and_fp32_masks():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((1, 4, 8, 8)).astype(np.float16)
    scores = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    ks = topk_counts(64, RATIOS)
    *gated, masks = _run(make_gate_model(RATIOS, ks, features.shape, TensorProto.FLOAT16), features, scores)
    assert all(g.dtype == np.float16 for g in gated) and masks.dtype == np.float32
    ref_gated, ref_masks = topk_gate_reference(features, scores, ks)
    np.testing.assert_array_equal(masks, ref_masks)
    np.testing.assert_array_equal(gated[2], ref_gated[2])


def test_node_contract_attributes_and_opsets():
    model = make_gate_model(RATIOS, (1, 2, 3, 4), (1, 1, 2, 5))
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == ("fornet", "TopKGate")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["ks"] == [1, 2, 3, 4] and attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b"fornet"
    np.testing.assert_allclose(attrs["ratios"], RATIOS, rtol=1e-6)
    assert list(node.input) == ["features", "scores"]
    assert list(node.output) == ["gated_0", "gated_1", "gated_2", "gated_3", "masks"]
    (function,) = model.functions
    assert (function.domain, function.name) == ("fornet", "TopKGate")
    assert {n.domain for n in function.node} == {""}, "the body must use standard ops only"
    assert {"TopK", "ScatterElements"} <= {n.op_type for n in function.node}
    assert {(o.domain, o.version) for o in model.opset_import} >= {("fornet", 1)}


def test_export_gate_module_matches_reference_and_restores_model():
    model = build_model("lite").eval()
    original = model.gate
    with export_gate(model):
        assert isinstance(model.gate, ExportTopKGate)
    assert model.gate is original
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(2, 1, 4, 8)).astype(np.float32)
    features = rng.standard_normal((2, 3, 4, 8)).astype(np.float32)
    gated, (masks,) = ExportTopKGate(RATIOS)(torch.from_numpy(features), torch.from_numpy(scores))
    ks = topk_counts(32, RATIOS)
    ref_gated, ref_masks = topk_gate_reference(features, scores, ks)
    np.testing.assert_array_equal(masks.numpy(), ref_masks)
    np.testing.assert_array_equal(gated[3].numpy(), ref_gated[3])


def test_export_gate_emits_one_node_with_constant_ks():
    gate = ExportTopKGate(RATIOS)
    buffer = io.BytesIO()
    features, scores = torch.randn(1, 3, 5, 7), torch.randn(1, 1, 5, 7)
    with warnings.catch_warnings():  # TracerWarning (k is a constant on purpose), deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(gate, (features, scores), buffer, dynamo=False, opset_version=17,
                          custom_opsets={"fornet": 1})
    graph = onnx.load_from_string(buffer.getvalue()).graph
    gates = [n for n in graph.node if n.op_type == "TopKGate"]
    assert len(gates) == 1 and gates[0].domain == "fornet"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gates[0].attribute}
    assert attrs["ks"] == [4, 7, 10, 14]  # round(r * 35) with banker's rounding: 3.5 -> 4, 10.5 -> 10
    assert len(gates[0].output) == 5


def test_strip_gate_function_keeps_the_node_for_plugin_lookup():
    model = make_gate_model(RATIOS, (1, 2, 3, 4), (1, 1, 2, 5))
    stripped = strip_gate_function(model)
    assert not stripped.functions and len(model.functions) == 1, "the original must be unchanged"
    assert [n.op_type for n in stripped.graph.node] == ["TopKGate"]
    with pytest.raises(Exception, match="TopKGate"):  # plain ORT can no longer run it: no function, no kernel
        ort.InferenceSession(stripped.SerializeToString(), providers=["CPUExecutionProvider"])
