"""Tiny ONNX graphs shaped like FoR-Net exports, for the tests of the TensorRT build side."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def save_model(path: Path, *, gate: bool = False, kind: str = "fp32", batch: int | str = "N",
               function: bool = False) -> Path:
    """A tiny graph: image -> Relu (-> Cast fp16 | Q/DQ) [-> fornet::TopKGate] -> output, optionally
    with a model-local function fornet.TopKGate (its body here is a stand-in)."""
    nodes = [helper.make_node("Relu", ["image"], ["x"])]
    initializers = []
    last = "x"
    if kind == "fp16":
        nodes.append(helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16))
        nodes.append(helper.make_node("Cast", ["x16"], ["x32"], to=TensorProto.FLOAT))
        last = "x32"
    elif kind == "int8":
        initializers += [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
                         helper.make_tensor("z", TensorProto.INT8, [], [0])]
        nodes.append(helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]))
        nodes.append(helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]))
        last = "dq"
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 3, 8, 16])]
    if gate:
        nodes.append(helper.make_node(
            "TopKGate", [last, "score"], ["out", "masks"], domain="fornet",
            ratios=[0.1, 0.2], ks=[13, 26], plugin_version="1", plugin_namespace="fornet"))
        outputs.append(helper.make_tensor_value_info("masks", TensorProto.FLOAT, [batch, 2, 8, 16]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["out"]))
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 16])]
    if gate:
        inputs.append(helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 1, 8, 16]))
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("fornet", 1)] if gate else [])
    model = helper.make_model(graph, opset_imports=opsets)
    if function:
        body = [helper.make_node("Identity", ["features"], ["gated_0"]),
                helper.make_node("Relu", ["scores"], ["masks"])]
        model.functions.append(helper.make_function("fornet", "TopKGate", ["features", "scores"],
                                                    ["gated_0", "masks"], body, [helper.make_opsetid("", 17)],
                                                    ["ratios", "ks", "plugin_version", "plugin_namespace"]))
    onnx.save(model, str(path))
    return path
