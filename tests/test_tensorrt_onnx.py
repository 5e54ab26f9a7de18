"""fornet.export.tensorrt.onnx_summary: what the engine build reads from an ONNX file (no TensorRT)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from fornet.export.tensorrt.onnx_summary import OnnxInputError, inspect_onnx


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


def test_plain_fp32_graph(tmp_path: Path) -> None:
    path = save_model(tmp_path / "fornet.onnx")
    summary = inspect_onnx(path)
    assert summary.gate_nodes == 0 and not summary.needs_plugin
    assert summary.graph_precision == "fp32"
    assert [(i.name, i.shape, i.dtype) for i in summary.inputs] == [("image", (None, 3, 8, 16), "float")]
    assert summary.outputs == ("out",)
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_gate_node_means_plugin(tmp_path: Path) -> None:
    summary = inspect_onnx(save_model(tmp_path / "fornet.onnx", gate=True, batch=2))
    assert summary.gate_nodes == 1 and summary.needs_plugin and not summary.gate_function
    assert inspect_onnx(save_model(tmp_path / "f.onnx", gate=True, function=True)).gate_function
    assert summary.inputs[0].shape == (2, 3, 8, 16)
    assert summary.outputs == ("out", "masks")


@pytest.mark.parametrize("kind", ["fp16", "int8"])
def test_precision_comes_from_the_graph(tmp_path: Path, kind: str) -> None:
    assert inspect_onnx(save_model(tmp_path / f"m_{kind}.onnx", kind=kind)).graph_precision == kind


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(OnnxInputError, match=r"not found.*fornet-export"):
        inspect_onnx(tmp_path / "nope.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx file\xff" * 10)
    with pytest.raises(OnnxInputError, match=r"not a readable ONNX model"):
        inspect_onnx(bad)
