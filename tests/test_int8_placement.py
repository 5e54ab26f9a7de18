"""TensorRT's Q/DQ placement rules: the checker on small graphs, and both INT8 files of a real export.

The TensorRT-targeted file (ModelOpt, FP16 base) must pass the checker; the ONNX Runtime file
(Q/DQ on every convolution output, FP32 residuals) is shown to break it where TensorRT would
keep convolutions' outputs in float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fornet.export.int8 import tensorrt_qdq
from fornet.export.int8.placement import placement_issues
from fornet.export.int8.qdq_graph import Int8GraphError, float_node_names, quantize_graph
from fornet.export.int8.tensorrt_qdq import prepare_for_modelopt, quantize_for_tensorrt
from fornet.runtime.onnxrt import OnnxRuntimeBackend
from tests.helpers.int8 import KS, export_fp32, lite_checkpoint, minmax_ranges, model_input


def _qdq(name: str, nodes: list[onnx.NodeProto]) -> str:
    """Append Q -> DQ of ``name``; return the dequantized tensor's name."""
    nodes.append(helper.make_node("QuantizeLinear", [name, "s", "z"], [f"{name}_q"], name=f"{name}/Q"))
    nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_dq"], name=f"{name}/DQ"))
    return f"{name}_dq"


def _block(*, residual_qdq: bool, output_qdq: bool, weights_qdq: bool = True) -> onnx.ModelProto:
    """x -> Q/DQ -> Conv (+ residual x) -> Add -> y: one residual block in the chosen layout."""
    nodes: list[onnx.NodeProto] = []
    x_in = _qdq("x", nodes)
    w = _qdq("w", nodes) if weights_qdq else "w"
    nodes.append(helper.make_node("Conv", [x_in, w], ["c"], name="conv", pads=[1, 1, 1, 1]))
    branch = _qdq("c", nodes) if output_qdq else "c"
    skip = _qdq("x_skip", nodes) if residual_qdq else "x"
    if residual_qdq:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["x_skip"], name="skip"))
    nodes.append(helper.make_node("Add", [branch, skip], ["y"], name="add"))
    inits = [numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    return helper.make_model(graph)


def test_tensorrt_layout_has_no_issues() -> None:
    assert placement_issues(_block(residual_qdq=True, output_qdq=False)) == []


def test_float_residual_is_flagged() -> None:
    issues = placement_issues(_block(residual_qdq=False, output_qdq=False))
    assert [(i.node, i.tensor) for i in issues] == [("add", "x")]
    assert "residual input" in str(issues[0])


def test_onnxruntime_layout_is_flagged() -> None:
    issues = placement_issues(_block(residual_qdq=False, output_qdq=True))
    assert [(i.node, i.op_type, i.tensor) for i in issues] == [("conv", "Conv", "c")]
    assert "splits the Conv+Add fusion" in issues[0].reason


def test_unquantized_weights_are_flagged_unless_expected_float() -> None:
    model = _block(residual_qdq=True, output_qdq=False, weights_qdq=False)
    assert [(i.node, i.tensor) for i in placement_issues(model)] == [("conv", "w")]
    assert placement_issues(model, expected_float=["conv"]) == []


def test_missing_modelopt_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensorrt_qdq.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Int8GraphError, match=r"pip install 'fornet-deploy\[int8-tensorrt\]'.*--no-tensorrt-int8"):
        tensorrt_qdq.require_modelopt()


# ------------------------------------------------------------------ both files of a real export

@pytest.fixture(scope="module")
def plugin_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("placement")
    return export_fp32(lite_checkpoint(root, seed=2), root / "export", gate="plugin").onnx_path


def test_gate_function_survives_the_opset_upgrade(plugin_export: Path) -> None:
    prepared = prepare_for_modelopt(onnx.load(plugin_export))
    assert [f.name for f in prepared.functions] == ["TopKGate"]
    assert {(o.domain, o.version) for o in prepared.opset_import} >= {("", 19)}
    onnx.checker.check_model(prepared)


@pytest.mark.slow
def test_tensorrt_file_follows_the_rules_and_the_onnxruntime_file_does_not(plugin_export: Path, synth_root: Path,
                                                                          tmp_path: Path) -> None:
    ranges = minmax_ranges(plugin_export, synth_root)
    keep = float_node_names(onnx.load(plugin_export))
    feed = model_input().batch([np.full((64, 128, 3), 128, np.uint8)] * 2)
    trt_model = quantize_for_tensorrt(plugin_export, ranges, feed, keep)  # raises on any placement issue
    assert placement_issues(trt_model, keep) == []
    ort_issues = placement_issues(quantize_graph(plugin_export, ranges, keep), keep)
    assert ort_issues and all(issue.op_type == "Conv" for issue in ort_issues)

    inferred = onnx.shape_inference.infer_shapes(trt_model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input,
                                                           *inferred.graph.output]}
    gate = next(node for node in trt_model.graph.node if node.op_type == "TopKGate")
    assert types[gate.input[1]] == TensorProto.FLOAT  # scores stay FP32
    assert types[gate.output[-1]] == TensorProto.FLOAT  # masks too
    assert TensorProto.FLOAT16 in types.values()  # the unquantized rest runs in FP16

    path = tmp_path / "fornet_int8_tensorrt.onnx"
    onnx.save(trt_model, path)
    with OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"], optimize=False) as backend:
        masks = backend.infer({"image": model_input().batch([np.zeros((64, 128, 3), np.uint8)])})["masks"]
    assert masks.sum(axis=(2, 3)).round().astype(int).tolist() == [list(KS)]  # k stays exact
