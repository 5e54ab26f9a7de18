"""Structure of fornet_int8.onnx: symmetric INT8 Q/DQ, per-channel weights, FP32 selector head and gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import ModelProto, numpy_helper

from fornet.contract import INPUT_NAME, MASKS_NAME, TOPK_GATE
from fornet.export.int8.qdq_graph import (
    Int8GraphError,
    activation_scales,
    check_qdq_graph,
    float_node_names,
    quantize_graph,
    quantized_conv_names,
)
from tests.helpers.int8 import KS, export_fp32, lite_checkpoint, minmax_ranges, model_input

HEAD = "/model/selector/head/Conv"


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> tuple[Path, ModelProto, ModelProto]:
    """(fornet.onnx path, its model, the INT8 model) for lite at 64x128, plugin gate."""
    folder = tmp_path_factory.mktemp("int8-graph")
    fp32 = export_fp32(lite_checkpoint(folder), folder / "export").onnx_path
    ranges = minmax_ranges(fp32, synth_root)
    model = onnx.load(fp32)
    return fp32, model, quantize_graph(fp32, ranges, float_node_names(model))


def _inits(model: ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _producer(model: ModelProto, tensor: str) -> str | None:
    return next((n.op_type for n in model.graph.node if tensor in n.output), None)


def test_float_nodes_are_the_selector_head_and_the_gate(graphs) -> None:
    _, model, _ = graphs
    assert float_node_names(model) == [HEAD, "/model/gate/TopKGate"]


def test_every_qdq_is_symmetric_int8(graphs) -> None:
    _, _, q = graphs
    inits = _inits(q)
    qdq = [n for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq, "the INT8 graph has Q/DQ nodes"
    for node in qdq:
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), node.name
    assert not any(a.dtype == np.int32 for n in qdq if (a := inits.get(n.input[0])) is not None), "bias stays FP32"


def test_weights_per_channel_activations_per_tensor(graphs) -> None:
    _, _, q = graphs
    inits = _inits(q)
    weights = activations = 0
    for node in q.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            weight, scale = inits[node.input[0]], inits[node.input[1]]
            axis = next(a.i for a in node.attribute if a.name == "axis")
            assert weight.dtype == np.int8 and axis == 0 and scale.shape == (weight.shape[0],), node.name
            weights += 1
        elif node.op_type == "QuantizeLinear":
            assert inits[node.input[1]].size == 1, node.name
            activations += 1
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    assert weights == len(convs) - 1, "every convolution but the selector head has INT8 weights"
    assert activations >= weights


def test_pairs_are_dedicated_and_skip_connections_stay_float(graphs) -> None:
    _, _, q = graphs
    readers: dict[str, list[str]] = {}
    for node in q.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    quantizers = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert all(readers[n.output[0]] == ["DequantizeLinear"] for n in quantizers)
    scales = [n.input[1] for n in quantizers]
    assert len(scales) == len(set(scales)), "every pair has its own constants (ONNX Runtime cannot merge them)"
    block_input = "/model/layer1/layer1.0/relu_1/Relu_output_0"
    assert "Add" in readers[block_input], "the residual Add reads the FP32 block input"
    producers = {o: n for n in q.graph.node for o in n.output}
    for add in (n for n in q.graph.node if n.op_type == "Add"):
        for name in add.input:
            if name in producers and producers[name].op_type == "DequantizeLinear":
                quantized = producers[producers[name].input[0]].input[0]
                assert producers[quantized].op_type == "Conv", f"{add.name} reads an INT8 copy of {quantized}"
    assert all(_producer(q, n.input[0]) == "DequantizeLinear" for n in q.graph.node
               if n.op_type == "Conv" and n.name != HEAD), "every other convolution reads INT8"


def test_no_qdq_on_selector_scores_gate_inputs_or_masks(graphs) -> None:
    _, _, q = graphs
    gate = next(n for n in q.graph.node if TOPK_GATE.matches(n.domain, n.op_type))
    head = next(n for n in q.graph.node if n.name == HEAD)
    assert gate.input[1] == head.output[0]
    for tensor in (*gate.input, *head.input):
        assert _producer(q, tensor) != "DequantizeLinear", tensor
    assert all(i in {init.name for init in q.graph.initializer} for i in head.input[1:]), "FP32 head weights"
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert head.output[0] not in quantized and MASKS_NAME not in quantized
    assert HEAD not in quantized_conv_names(q)
    check_qdq_graph(q)


def test_int8_runs_on_onnx_runtime_with_exact_k(graphs, synth_root) -> None:
    from fornet.calibration.cityscapes import CityscapesDataset

    fp32, _, q = graphs
    images = [CityscapesDataset(synth_root, "val")[i].image for i in range(2)]
    session = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    for image in images:
        feed = {INPUT_NAME: model_input().batch([image])}
        logits, masks = session.run(None, feed)
        ref_logits, _ = reference.run(None, feed)
        assert masks.sum(axis=(2, 3)).tolist() == [list(map(float, KS))]
        assert (logits.argmax(1) == ref_logits.argmax(1)).mean() > 0.9


def test_onnx_runtime_fuses_every_int8_convolution(graphs, tmp_path) -> None:
    _, _, q = graphs
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(q.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(tmp_path / "optimized.onnx")
    fused = [n for n in optimized.graph.node if n.op_type == "QLinearConv"]
    assert len(fused) == len(quantized_conv_names(q)), "no INT8 convolution is left to run in float (CPU speed)"


def test_cache_scales_are_the_graph_scales(graphs) -> None:
    _, model, q = graphs
    scales = activation_scales(q)
    names = {i.name for i in model.graph.input} | {o for n in model.graph.node for o in n.output}
    assert INPUT_NAME in scales and set(scales) <= names, "cache names are fornet.onnx tensor names"
    assert HEAD not in scales and "/model/selector/head/Conv_output_0" not in scales and MASKS_NAME not in scales
    inits = _inits(q)
    for node in q.graph.node:
        if node.op_type == "QuantizeLinear":
            assert scales[node.input[0]] == float(inits[node.input[1]])


def _mutated(q: ModelProto, op_type: str, index: int, value: np.ndarray) -> ModelProto:
    bad = ModelProto()
    bad.CopyFrom(q)
    node = next(n for n in bad.graph.node if n.op_type == op_type)
    init = next(i for i in bad.graph.initializer if i.name == node.input[index])
    init.CopyFrom(numpy_helper.from_array(value, init.name))
    return bad


def test_checker_rejects_layout_violations(graphs) -> None:
    _, _, q = graphs
    shared = ModelProto()
    shared.CopyFrom(q)
    conv = next(n for n in shared.graph.node if n.op_type == "Conv" and n.name != HEAD)
    other = next(n for n in shared.graph.node if n.op_type == "Conv" and n.name not in (HEAD, conv.name))
    other.input[0] = conv.input[0]
    with pytest.raises(Int8GraphError, match="must serve exactly that node"):
        check_qdq_graph(shared)
    with pytest.raises(Int8GraphError, match="zero point 0"):
        check_qdq_graph(_mutated(q, "QuantizeLinear", 2, np.array(3, np.int8)))
    with pytest.raises(Int8GraphError, match="per-tensor"):
        check_qdq_graph(_mutated(q, "QuantizeLinear", 1, np.array([0.1, 0.2], np.float32)))


def test_quantizing_the_head_is_refused(graphs, synth_root) -> None:
    fp32, _, _ = graphs
    bad = quantize_graph(fp32, minmax_ranges(fp32, synth_root), ["/model/gate/TopKGate"])
    with pytest.raises(Int8GraphError, match="selector/head/Conv must stay FP32"):
        check_qdq_graph(bad)


def test_single_layer_quantization(graphs, synth_root) -> None:
    fp32, model, _ = graphs
    one = quantize_graph(fp32, minmax_ranges(fp32, synth_root), float_node_names(model),
                         only=["/model/decoder/decoder.0/decoder.0.0/Conv"])
    assert quantized_conv_names(one) == ["/model/decoder/decoder.0/decoder.0.0/Conv"]


def test_fallback_layers_read_fp32_and_leave_no_orphans(graphs, synth_root) -> None:
    fp32, model, _ = graphs
    fallback = ["/model/layer2/layer2.0/conv1/Conv", "/model/layer1/layer1.0/conv2/Conv"]
    q = quantize_graph(fp32, minmax_ranges(fp32, synth_root), [*float_node_names(model), *fallback])
    check_qdq_graph(q, fallback)
    convs = {n.name: n for n in q.graph.node}
    assert _producer(q, convs[fallback[0]].input[0]) == "Relu", "the float layer reads the FP32 tensor"
    downsample = convs["/model/layer2/layer2.0/downsample/downsample.0/Conv"]
    assert _producer(q, downsample.input[0]) == "DequantizeLinear", "its INT8 neighbour keeps the INT8 copy"
    readers = {name for node in q.graph.node for name in node.input}
    assert all(n.output[0] in readers for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    assert all(init.name in readers for init in q.graph.initializer), "no unused constants"
    assert set(quantized_conv_names(q)).isdisjoint(fallback)


def test_native_gate_keeps_the_head_in_float(tmp_path, synth_root) -> None:
    fp32 = export_fp32(lite_checkpoint(tmp_path), tmp_path / "native", gate="native").onnx_path
    model = onnx.load(fp32)
    assert float_node_names(model) == [HEAD]
    q = quantize_graph(fp32, minmax_ranges(fp32, synth_root), [HEAD])
    check_qdq_graph(q)
    topk = next(n for n in q.graph.node if n.op_type == "TopK")
    assert _producer(q, topk.input[0]) != "DequantizeLinear"
