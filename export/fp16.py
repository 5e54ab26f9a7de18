"""FP16 mixed-precision ONNX for strongly typed TensorRT builds.

Precision plan (every tensor's type is explicit in the file, so a TensorRT 11 strongly typed
network, or a 10.x one built with ``STRONGLY_TYPED``, runs exactly this):

* FP16: weights and activations of the backbone, ``trans``, selector body, context, branches,
  decoder and classifier.
* FP32: the selector head and its output (the gate's ``scores``: half precision would make
  logits tie at the k-th value), the gate's selection and ``masks`` output, the in-graph
  pre-processing (``--input raw``) and everything after the classifier (the final bilinear
  upsample, as the reference does, and the in-graph argmax).
* The gate takes its ``features`` in FP16 and returns ``gated_i`` in FP16: the op is typed on
  ``features`` and multiplying by a 0/1 mask is exact in any precision, so the fused kernel
  moves half the bytes with no loss.
* Model inputs and outputs stay FP32 unless ``io_fp16`` (``masks`` then becomes FP16 too).

Conversion library: ``onnxconverter-common`` (``float16.convert_float_to_float16``), chosen over
NVIDIA ModelOpt AutoCast because it is a small pure-Python package whose only dependencies
(onnx, numpy, protobuf) are already ours and it runs on any CPU machine. ModelOpt's ONNX tools
need its ``[onnx]`` extra, which pins onnx and pulls ``onnxruntime-gpu`` and ``cupy``, clashing
with the plain ``onnxruntime`` this package verifies with (AutoCast itself builds on
onnxconverter-common). The library converts every node not on the FP32 list and puts Casts at
the boundaries; two of its behaviours are then corrected here: it would wrap the gate in
FP32 Casts (we feed it FP16 features directly), and it retypes a graph output to FP16 when its
producer is on the FP32 list despite ``keep_io_types`` (we bypass that Cast).
"""
# ruff: noqa: TID253

from __future__ import annotations

import warnings

import onnx
from onnx import ModelProto, NodeProto, TensorProto

from fornet.contract import TOPK_GATE
from fornet.export.errors import ExportError


class Fp16ConversionError(ExportError):
    """The FP16 conversion library is missing or produced an unusable graph."""


def _producers(graph: onnx.GraphProto) -> dict[str, NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _consumers(graph: onnx.GraphProto, name: str) -> list[NodeProto]:
    return [node for node in graph.node if name in node.input]


def _gate_node(graph: onnx.GraphProto) -> NodeProto | None:
    return next((n for n in graph.node if TOPK_GATE.matches(n.domain, n.op_type)), None)


def fp32_node_names(model: ModelProto) -> list[str]:
    """Nodes that stay FP32: pre-processing, selector head, gate (if a node), post-processing.

    Pre-processing is everything between a model input and the first ``Conv`` (or the
    ``QuantizeLinear`` in front of it, in a Q/DQ graph); post-processing
    everything between the last ``Conv`` (the classifier) and the outputs; the selector head
    is the producer of the gate's ``scores`` input.
    """
    graph = model.graph
    producers = _producers(graph)
    gate = _gate_node(graph)
    keep: list[str] = [] if gate is None else [gate.name, producers[gate.input[1]].name]

    def walk_back(tensor: str) -> None:
        node = producers.get(tensor)
        if node is None or node.op_type == "Conv" or node.name in keep:
            return
        keep.append(node.name)
        for name in node.input:
            walk_back(name)

    for output in graph.output:
        walk_back(output.name)
    graph_inputs = {i.name for i in graph.input}
    frontier = [n for n in graph.node if graph_inputs & set(n.input)]
    while frontier:
        node = frontier.pop()
        if node.op_type in ("Conv", "QuantizeLinear") or node.name in keep:  # Q/DQ: the DQ takes the FP16 side
            continue
        keep.append(node.name)
        frontier += [c for out in node.output for c in _consumers(graph, out)]
    return keep


def _bypass_cast(graph: onnx.GraphProto, cast: NodeProto) -> None:
    """Remove ``cast``, wiring its input straight to its consumers (or to the graph output)."""
    source, target = cast.input[0], cast.output[0]
    if target in {o.name for o in graph.output}:
        producer = _producers(graph)[source]
        producer.output[list(producer.output).index(source)] = target
        for node in _consumers(graph, source):
            node.input[:] = [target if i == source else i for i in node.input]
    else:
        for node in _consumers(graph, target):
            node.input[:] = [source if i == target else i for i in node.input]
    graph.node.remove(cast)


def _feed_gate_fp16(graph: onnx.GraphProto) -> None:
    gate = _gate_node(graph)
    if gate is None:
        return
    producers = _producers(graph)
    cast_in = producers.get(gate.input[0])
    if cast_in is not None and cast_in.op_type == "Cast" and len(_consumers(graph, cast_in.output[0])) == 1:
        _bypass_cast(graph, cast_in)
    for out in gate.output[:-1]:
        users = _consumers(graph, out)
        if len(users) == 1 and users[0].op_type == "Cast":
            _bypass_cast(graph, users[0])


def _restore_io_types(graph: onnx.GraphProto, float_type: int) -> None:
    producers = _producers(graph)
    for output in graph.output:
        elem = output.type.tensor_type.elem_type
        if elem in (TensorProto.FLOAT, TensorProto.FLOAT16) and elem != float_type:
            cast = producers.get(output.name)
            if cast is None or cast.op_type != "Cast":
                raise Fp16ConversionError(f"output {output.name} came out as {TensorProto.DataType.Name(elem)} "
                                          "with no Cast to remove; report this graph as a bug")
            _bypass_cast(graph, cast)
            output.type.tensor_type.elem_type = float_type


def convert_to_fp16(model: ModelProto, io_fp16: bool = False) -> ModelProto:
    """Return the FP16 mixed-precision version of the simplified FP32 ``model`` (a new object)."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise Fp16ConversionError("FP16 export needs onnxconverter-common: "
                                  "pip install 'onnxconverter-common>=1.16'") from exc
    keep = fp32_node_names(model)
    with warnings.catch_warnings():
        # It warns for every weight it clamps to FP16's range (tiny BatchNorm-folded values).
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=not io_fp16, op_block_list=[], node_block_list=keep,
        )
    graph = converted.graph
    _feed_gate_fp16(graph)
    float_io = TensorProto.FLOAT16 if io_fp16 else TensorProto.FLOAT
    _restore_io_types(graph, float_io)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(converted, strict_mode=True)
