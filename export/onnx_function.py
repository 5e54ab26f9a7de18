"""The model-local ONNX function ``fornet.TopKGate``: the gate written in standard ops.

A model that carries this function runs on any ONNX consumer with no custom-op library: the
checker, onnxsim, ONNX Runtime (which inlines it) and TensorRT's parser (which, from 10.7,
prefers a registered ``TopKGate`` plugin of the same name over it). ``--gate native`` inlines
it into the graph (:func:`inline_gate`), so TensorRT's own TopK layer runs it instead.

Body, per image (``n = h*w`` cells, ``K = max(ks)``):
``TopK`` of the flattened float32 scores (largest, sorted: ties go to the smaller flat index),
then for each ratio ``i`` the first ``ks[i]`` indices are scattered as ones into zeros
(``ScatterElements``), reshaped to ``B x 1 x h x w`` and multiplied into the features
(``CastLike`` makes the mask the features' type, so one body serves FP32 and FP16 features).
``ks`` comes from the node's attribute, so the body holds no size-dependent constant.
"""
# ruff: noqa: TID253

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import FunctionProto, ModelProto, TensorProto, helper

from fornet.contract import ATTR_KS, GATE_INPUTS, MASKS_NAME, TOPK_GATE, gated_output_names


def _const_ints(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value_ints=values)


def make_gate_function(num_ratios: int, opset: int) -> FunctionProto:
    """The ``fornet.TopKGate`` function for ``num_ratios`` masks, its body in ``ai.onnx`` ``opset``."""
    ks_ref = helper.make_node("Constant", [], ["ks_t"])
    ks_ref.attribute.append(
        onnx.AttributeProto(name="value_ints", ref_attr_name=ATTR_KS, type=onnx.AttributeProto.INTS)
    )
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    nodes = [
        ks_ref,
        _const_ints("flat_shape", [0, -1]),
        _const_ints("axis1", [1]),
        _const_ints("start0", [0]),
        helper.make_node("Reshape", ["scores", "flat_shape"], ["flat"]),
        helper.make_node("ReduceMax", ["ks_t"], ["k_max"], keepdims=1),
        helper.make_node("TopK", ["flat", "k_max"], ["top_values", "top_indices"],
                         axis=1, largest=1, sorted=1),
        helper.make_node("Shape", ["flat"], ["flat_dims"]),
        helper.make_node("Shape", ["top_indices"], ["top_dims"]),
        helper.make_node("Shape", ["scores"], ["cell_dims"]),
        helper.make_node("ConstantOfShape", ["flat_dims"], ["zeros"], value=zero),
        helper.make_node("ConstantOfShape", ["top_dims"], ["ones"], value=one),
    ]
    masks = []
    for i in range(num_ratios):
        nodes += [
            _const_ints(f"i{i}", [i]),
            _const_ints(f"i{i}_end", [i + 1]),
            helper.make_node("Slice", ["ks_t", f"i{i}", f"i{i}_end"], [f"k_{i}"]),
            helper.make_node("Slice", ["top_indices", "start0", f"k_{i}", "axis1"], [f"keep_{i}"]),
            helper.make_node("Slice", ["ones", "start0", f"k_{i}", "axis1"], [f"ones_{i}"]),
            helper.make_node("ScatterElements", ["zeros", f"keep_{i}", f"ones_{i}"], [f"flat_mask_{i}"],
                             axis=1),
            helper.make_node("Reshape", [f"flat_mask_{i}", "cell_dims"], [f"mask_{i}"]),
            helper.make_node("CastLike", [f"mask_{i}", "features"], [f"mask_{i}_like"]),
            helper.make_node("Mul", ["features", f"mask_{i}_like"], [f"gated_{i}"]),
        ]
        masks.append(f"mask_{i}")
    nodes.append(helper.make_node("Concat", masks, [MASKS_NAME], axis=1))
    return helper.make_function(
        TOPK_GATE.domain, TOPK_GATE.name, list(GATE_INPUTS), gated_output_names(num_ratios), nodes,
        [helper.make_opsetid("", opset)], attributes=list(TOPK_GATE.attributes),
    )


def make_gate_model(ratios: Sequence[float], ks: Sequence[int], features_shape: Sequence[int],
                    features_type: int = TensorProto.FLOAT, opset: int = 17) -> ModelProto:
    """A model holding one ``fornet::TopKGate`` node and its function (for op-level tests).

    Inputs ``features`` (``features_shape``, ``features_type``) and ``scores`` (B x 1 x h x w
    float32); outputs ``gated_0 .. gated_{R-1}, masks``, as the op defines them.
    """
    b, c, h, w = features_shape
    outputs = gated_output_names(len(ks))
    node = helper.make_node(TOPK_GATE.name, list(GATE_INPUTS), outputs, domain=TOPK_GATE.domain, name="gate",
                            ratios=[float(r) for r in ratios], ks=[int(k) for k in ks],
                            plugin_version=TOPK_GATE.plugin_version, plugin_namespace=TOPK_GATE.plugin_namespace)
    graph = helper.make_graph(
        [node], "topk_gate",
        [helper.make_tensor_value_info("features", features_type, [b, c, h, w]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [b, 1, h, w])],
        [helper.make_tensor_value_info(name, features_type, [b, c, h, w]) for name in outputs[:-1]]
        + [helper.make_tensor_value_info(MASKS_NAME, TensorProto.FLOAT, [b, len(ks), h, w])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid(TOPK_GATE.domain, TOPK_GATE.opset_version)])
    return attach_gate_function(model)


def attach_gate_function(model: ModelProto) -> ModelProto:
    """Add the ``fornet.TopKGate`` function (matching the model's gate node) to ``model`` in place."""
    gates = [n for n in model.graph.node if TOPK_GATE.matches(n.domain, n.op_type)]
    if len(gates) != 1:
        raise ValueError(f"expected exactly one {TOPK_GATE.qualified_name} node, found {len(gates)}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    kept = [f for f in model.functions if not TOPK_GATE.matches(f.domain, f.name)]
    del model.functions[:]
    model.functions.extend([*kept, make_gate_function(len(gates[0].output) - 1, opset)])
    if not any(o.domain == TOPK_GATE.domain for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(TOPK_GATE.domain, TOPK_GATE.opset_version))
    return model


def strip_gate_function(model: ModelProto) -> ModelProto:
    """A copy of ``model`` without the ``fornet.TopKGate`` function (the node stays).

    TensorRT's ONNX parser before 10.7 expands a model-local function instead of looking up a
    plugin of the same name; a plan build for those versions parses this copy, so the node
    resolves to the registered ``TopKGate`` plugin (whose k has no 3840 limit).
    """
    stripped = ModelProto()
    stripped.CopyFrom(model)
    kept = [f for f in stripped.functions if not TOPK_GATE.matches(f.domain, f.name)]
    del stripped.functions[:]
    stripped.functions.extend(kept)
    return stripped


def _castlike_to_cast(model: ModelProto) -> None:
    """Turn each ``CastLike(x, like)`` into ``Cast(x, to=type of like)`` (TensorRT-friendlier)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)}
    for node in model.graph.node:
        if node.op_type == "CastLike" and types.get(node.input[1]):
            cast = helper.make_node("Cast", [node.input[0]], list(node.output), name=node.name,
                                    to=types[node.input[1]])
            node.CopyFrom(cast)


def inline_gate(model: ModelProto) -> ModelProto:
    """Replace the gate node by its function body (standard ops only) and drop the function."""
    from onnx import inliner

    inlined = inliner.inline_local_functions(model)
    del inlined.functions[:]
    kept = [o for o in inlined.opset_import if o.domain != TOPK_GATE.domain]
    del inlined.opset_import[:]
    inlined.opset_import.extend(kept)
    _castlike_to_cast(inlined)
    return inlined
