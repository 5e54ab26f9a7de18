"""Structure of exported graphs: the TopKGate node, opsets, checker, onnxsim, FP16 typing, sidecar."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fornet import __version__
from fornet.calibration.labels import CLASS_NAMES, TRAIN_COLORS
from fornet.export import ExportOptions, export_onnx
from fornet.export.errors import ExportError
from fornet.export.simplify import float_shape_arithmetic
from fornet.model import save_checkpoint
from tests.helpers.model_utils import realistic_model
from tests.helpers.parity import check_parity, images_of

SHAPE_OPS = {"Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "ConstantOfShape", "Range", "Floor", "Ceil"}


@pytest.fixture(scope="module")
def lite_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "lite.pth"
    save_checkpoint(path, realistic_model("lite", seed=1), "lite")
    return path


@pytest.fixture(scope="module")
def plugin_export(lite_ckpt, tmp_path_factory):
    """lite at 128x256 (grid 8x16 = 128 cells), plugin gate, FP32 + FP16, verified."""
    out = tmp_path_factory.mktemp("plugin")
    return export_onnx(lite_ckpt, out, ExportOptions(input_size=(128, 256), fp16=True, gate="plugin", progress=False))


@pytest.fixture(scope="module")
def native_export(lite_ckpt, tmp_path_factory, synth_root):
    """lite at 256x384 (grid 16x24 = 384 cells), native gate, dynamic batch, FP32 + FP16."""
    out = tmp_path_factory.mktemp("native")
    options = ExportOptions(input_size=(256, 384), gate="native", dynamic_batch=True, batch=2, fp16=True,
                            verify_data=synth_root, verify_images=3, progress=False)
    return export_onnx(lite_ckpt, out, options)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _types(model: onnx.ModelProto) -> dict[str, int]:
    graph = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


def test_one_gate_node_with_constant_attributes(plugin_export):
    model = onnx.load(plugin_export.onnx_path)
    gates = [n for n in model.graph.node if n.op_type == "TopKGate"]
    assert len(gates) == 1
    gate = gates[0]
    assert gate.domain == "fornet"
    attrs = _attrs(gate)
    # 128 cells: round(12.8, 25.6, 38.4, 51.2) = 13, 26, 38, 51
    assert attrs["ks"] == [13, 26, 38, 51] and list(plugin_export.ks) == [13, 26, 38, 51]
    np.testing.assert_allclose(attrs["ratios"], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    assert attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b"fornet"
    assert len(gate.input) == 2 and len(gate.output) == 5
    producers = {o: n for n in model.graph.node for o in n.output}
    assert producers[gate.input[1]].op_type == "Conv"  # scores straight from the selector head
    assert [o.name for o in model.graph.output] == ["logits", "masks"]
    assert gate.output[-1] == "masks"


def test_opsets_function_and_full_check(plugin_export):
    for path in (plugin_export.onnx_path, plugin_export.fp16_path):
        model = onnx.load(path)
        assert {(o.domain or "", o.version) for o in model.opset_import} == {("", 17), ("fornet", 1)}
        (function,) = model.functions
        assert (function.domain, function.name) == ("fornet", "TopKGate")
        assert all(n.domain == "" for n in function.node)
        onnx.checker.check_model(model, full_check=True)


def test_no_shape_arithmetic_left_after_onnxsim(plugin_export):
    model = onnx.load(plugin_export.onnx_path)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & SHAPE_OPS, f"shape computations left: {ops & SHAPE_OPS}"
    initializers = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Resize":
            assert all(not name or name in initializers for name in node.input[1:]), "Resize sizes must be constants"
    assert float_shape_arithmetic(model) == []


def test_float_shape_arithmetic_is_detected():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["sf", "half"], ["scaled"]),
             helper.make_node("Cast", ["scaled"], ["si"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "si"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[helper.make_tensor("half", TensorProto.FLOAT, [], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    nodes_found = float_shape_arithmetic(model)
    assert len(nodes_found) == 2  # the Cast to float and the Mul; Reshape's output is data


def test_sidecar_records_the_export(plugin_export, lite_ckpt):
    data = json.loads(plugin_export.sidecar_path.read_text())
    assert plugin_export.sidecar_path.name == "fornet.onnx.json"
    assert data["onnx"]["sha256"] == hashlib.sha256(plugin_export.onnx_path.read_bytes()).hexdigest()
    assert data["checkpoint"]["sha256"] == hashlib.sha256(lite_ckpt.read_bytes()).hexdigest()
    assert data["onnx"]["opset"] == 17 and data["onnx"]["precision"] == "fp32"
    assert data["tool"]["version"] == __version__
    assert data["variant"] == "lite"
    assert data["classes"] == list(CLASS_NAMES) and data["colors"] == TRAIN_COLORS.tolist()
    assert data["input"]["size"] == [128, 256] and data["input"]["layout"] == "NCHW"
    assert data["input"]["shape"] == [1, 3, 128, 256] and data["input"]["dtype"] == "float32"
    np.testing.assert_allclose(data["input"]["mean"], [0.485, 0.456, 0.406])
    np.testing.assert_allclose(data["input"]["std"], [0.229, 0.224, 0.225])
    assert data["topk"]["ks"] == [13, 26, 38, 51] and data["topk"]["grid"] == [8, 16]
    assert data["topk"]["node"]["plugin_version"] == "1"
    assert [o["name"] for o in data["outputs"]] == ["logits", "masks"]
    verification = data["verification"]
    assert verification["passed"] and verification["selected_cells"] == [[13, 26, 38, 51]]
    fp16 = json.loads(plugin_export.fp16_sidecar_path.read_text())
    assert fp16["onnx"]["precision"] == "fp16" and fp16["onnx"]["file"] == "fornet_fp16.onnx"
    assert fp16["onnx"]["sha256"] == hashlib.sha256(plugin_export.fp16_path.read_bytes()).hexdigest()
    leftovers = [p.name for p in plugin_export.onnx_path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "atomic writes must not leave temporary files"


def test_fp16_file_is_mixed_precision_with_fp32_selection(plugin_export):
    model = onnx.load(plugin_export.fp16_path)
    types = _types(model)
    graph = model.graph
    assert [types[i.name] for i in graph.input] == [TensorProto.FLOAT]
    assert [types[o.name] for o in graph.output] == [TensorProto.FLOAT, TensorProto.FLOAT]
    (gate,) = [n for n in graph.node if n.op_type == "TopKGate"]
    assert types[gate.input[0]] == TensorProto.FLOAT16, "features enter the gate in FP16"
    assert types[gate.input[1]] == TensorProto.FLOAT, "scores stay FP32"
    assert [types[o] for o in gate.output] == [TensorProto.FLOAT16] * 4 + [TensorProto.FLOAT]
    producers = {o: n for n in graph.node for o in n.output}
    head = producers[gate.input[1]]
    assert head.op_type == "Conv" and all(types[i] == TensorProto.FLOAT for i in head.input)
    convs = [n for n in graph.node if n.op_type == "Conv" and n is not head]
    assert convs and all(types[n.input[1]] == TensorProto.FLOAT16 for n in convs)
    resize = producers["logits"]
    assert resize.op_type == "Resize" and types[resize.input[0]] == TensorProto.FLOAT, "final upsample in FP32"


def test_native_gate_inlines_standard_ops(native_export):
    for path in (native_export.onnx_path, native_export.fp16_path):
        model = onnx.load(path)
        assert not model.functions
        assert {o.domain or "" for o in model.opset_import} == {""}
        ops = [n.op_type for n in model.graph.node]
        assert "TopKGate" not in ops and ops.count("TopK") == 1 and ops.count("ScatterElements") == 4
        (topk,) = [n for n in model.graph.node if n.op_type == "TopK"]
        k = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}.get(topk.input[1])
        assert k is not None and k.tolist() == [154], "K must be a constant initializer (384 cells, ratio 0.4)"
        assert _types(model)[topk.input[0]] == TensorProto.FLOAT, "Top-K runs in FP32 in both files"
        assert float_shape_arithmetic(model) == []
        onnx.checker.check_model(model, full_check=True)
    assert native_export.ks == (38, 77, 115, 154)


def test_dynamic_batch_runs_any_batch(native_export):
    model = onnx.load(native_export.onnx_path)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.dim_value
    session = ort.InferenceSession(str(native_export.onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 256, 384)).astype(np.float32)
    logits3, masks3 = session.run(None, {"image": x})
    logits1, masks1 = session.run(None, {"image": x[1:2]})
    assert logits3.shape == (3, 19, 256, 384) and masks3.shape == (3, 4, 16, 24)
    np.testing.assert_allclose(logits1[0], logits3[1], atol=1e-4)
    np.testing.assert_array_equal(masks1[0], masks3[1])
    np.testing.assert_array_equal(masks3.sum(axis=(2, 3)), np.tile([38, 77, 115, 154], (3, 1)))


def test_native_refuses_k_above_tensorrt_limit(lite_ckpt, tmp_path):
    # lite at 1280x2048: 80 x 128 = 10240 cells, k = 1024, 2048, 3072, 4096 > 3840
    with pytest.raises(ExportError, match=r"k = \[1024, 2048, 3072, 4096\] \(\[4096\] too large\)"):
        export_onnx(lite_ckpt, tmp_path, ExportOptions(input_size=(1280, 2048), gate="native"))
    assert not (tmp_path / "fornet.onnx").exists()


@pytest.mark.parametrize(("fixture", "size", "batch"), [("plugin_export", (128, 256), 1),
                                                        ("native_export", (256, 384), None)])
def test_lite_parity_two_sizes_fp32_and_fp16(request, lite_ckpt, synth_root, fixture, size, batch):
    result = request.getfixturevalue(fixture)
    images = images_of(synth_root, size)
    check_parity(lite_ckpt, result.onnx_path, images, batch=batch, max_diff=1e-3, min_agreement=0.9999)
    check_parity(lite_ckpt, result.fp16_path, images, batch=batch, max_diff=None, min_agreement=0.99)
