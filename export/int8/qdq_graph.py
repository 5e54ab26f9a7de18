"""``fornet_int8.onnx``: explicit INT8 quantization (QuantizeLinear/DequantizeLinear pairs) of ``fornet.onnx``.

What the file holds, for TensorRT 10.x/11.x strongly typed builds and for ONNX Runtime:

* INT8 Q/DQ on the inputs and outputs of every convolution (where TensorRT fuses them into INT8
  kernels); activations per-tensor, weights per output channel (axis 0); symmetric, zero point 0.
* Biases stay FP32: TensorRT's parser rejects a DequantizeLinear of INT32 ("only activation types
  allowed as input to this layer") and folds the bias into the INT8 convolution itself; ONNX
  Runtime's CPU provider quantizes it on load (its bias-quantization pass).
* Skip connections (residual Adds, the context path) and float convolutions read their input in
  FP32; only the INT8 convolutions read the INT8 copy (see :func:`_float_readers`).
* Every Q/DQ pair in front of a convolution serves only that convolution and has its own
  scale/zero-point constants (TensorRT cannot share a pair between quantized nodes; ONNX Runtime
  would merge shared ones and then leave those convolutions in float, see
  :func:`_own_quantization_constants`).
* FP32 and never quantized: the selector head, its scores, the ``fornet::TopKGate`` node and the
  ``masks`` output, so Top-K keeps exactly ``k`` cells; plus any sensitive layers kept in float
  by the accuracy-driven fallback.

Tool: ONNX Runtime's quantizer (``onnxruntime.quantization.quantize_static``, QDQ format),
configured for TensorRT (the settings above). Chosen over NVIDIA ModelOpt's ONNX PTQ because
it ships inside the ``onnxruntime`` package this project already depends on and verifies with,
runs on any CPU host, and leaves the custom gate node alone when told to; ModelOpt's ``[onnx]``
extra pins onnx and pulls ``onnxruntime-gpu`` and ``cupy``, which clash with plain
``onnxruntime``, and its default ``high_precision_dtype="fp16"`` would also recast the model.
The ranges come from :mod:`fornet.calibration.int8_calibrate` (quantize_static reads them from
a calibration cache file and does not calibrate again).
"""
# ruff: noqa: TID253

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, numpy_helper

from fornet.calibration.int8_calibrate import ActivationRanges
from fornet.contract import MASKS_NAME, TOPK_GATE
from fornet.export.errors import ExportError

INT8_NAME = "fornet_int8.onnx"
#: Operator types that get Q/DQ nodes.
QUANTIZED_OP_TYPES = ("Conv",)
#: quantize_static's extra options for TensorRT-compatible explicit quantization.
QDQ_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
               "DedicatedQDQPair": True}
_METHODS = {"entropy": "Entropy", "percentile": "Percentile", "minmax": "MinMax"}


class Int8GraphError(ExportError):
    """The INT8 graph cannot be built or breaks a rule of the Q/DQ layout."""


def _producers(model: ModelProto) -> dict[str, NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _consumers(model: ModelProto) -> dict[str, list[NodeProto]]:
    users: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def float_node_names(model: ModelProto) -> list[str]:
    """Nodes that must stay FP32: the selector head (the convolution producing the gate's scores)
    and the ``fornet::TopKGate`` node (with ``--gate native`` the inlined TopK ops are never
    quantized; the head is found from the TopK's input).

    Raises:
        Int8GraphError: the graph has no gate or no convolution in front of its scores.
    """
    producers = _producers(model)
    gate = next((n for n in model.graph.node if TOPK_GATE.matches(n.domain, n.op_type)), None)
    topk = next((n for n in model.graph.node if n.op_type == "TopK"), None)
    if gate is not None:
        keep, scores = [gate.name], gate.input[1]
    elif topk is not None:
        keep, scores = [], topk.input[0]
    else:
        raise Int8GraphError("the FP32 graph has neither a fornet::TopKGate node nor a TopK; INT8 export needs "
                             "a graph written by fornet-export")
    node = producers.get(scores)
    while node is not None and node.op_type != "Conv":
        node = producers.get(node.input[0])
    if node is None:
        raise Int8GraphError("no convolution produces the gate's scores; INT8 export needs a graph written by "
                             "fornet-export")
    return [node.name, *keep]


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """Silence quantize_static's root-logger warnings (pre-processing advice that does not apply:
    the FP32 graph is already simplified, and pre-processing would rename its tensors)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _write_ort_cache(ranges: ActivationRanges, path: Path) -> None:
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    data = {name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod[_METHODS[ranges.method]], data), path)


def quantize_graph(fp32_path: str | os.PathLike[str], ranges: ActivationRanges, keep_float: Sequence[str],
                   only: Sequence[str] | None = None) -> ModelProto:
    """The Q/DQ version of ``fp32_path`` with ``ranges``; ``keep_float`` nodes stay FP32.

    Args:
        fp32_path: ``fornet.onnx``.
        ranges: calibrated ranges of its tensors.
        keep_float: node names to leave unquantized (at least :func:`float_node_names`).
        only: quantize just these nodes (used to measure one layer's sensitivity).

    Raises:
        Int8GraphError: this onnxruntime cannot quantize from stored ranges, or quantization failed.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise Int8GraphError(f"onnxruntime {onnxruntime.__version__} cannot quantize from stored calibration "
                             "ranges (quantize_static has no calibration_cache_path); upgrade it: "
                             "pip install -U onnxruntime")
    with tempfile.TemporaryDirectory(prefix="fornet-int8-") as tmp:
        cache, out = Path(tmp) / "ranges.json", Path(tmp) / INT8_NAME
        _write_ort_cache(ranges, cache)
        try:
            with _quiet_onnxruntime():
                quantize_static(
                    str(fp32_path), str(out), None, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OP_TYPES), per_channel=True, reduce_range=False,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    nodes_to_quantize=list(only) if only else None, nodes_to_exclude=list(keep_float),
                    calibrate_method=CalibrationMethod[_METHODS[ranges.method]],
                    calibration_cache_path=str(cache), extra_options=dict(QDQ_OPTIONS),
                )
        except (ValueError, KeyError, RuntimeError, onnx.checker.ValidationError) as exc:
            raise Int8GraphError(f"ONNX Runtime could not quantize {Path(fp32_path).name} ({type(exc).__name__}: "
                                 f"{exc}); recalibrate (--recalibrate) or report this graph") from exc
        model = onnx.load(out)
    _float_readers(model)
    _own_quantization_constants(model)
    return model


def _float_readers(model: ModelProto) -> None:
    """Hand FP32 tensors to the readers that do not run in INT8, and drop Q/DQ pairs left unread.

    quantize_static gives every reader of a quantized tensor its dequantized copy. Readers that
    get the FP32 original instead:

    * convolutions kept in float (the selector head, fallback layers): float means float inputs;
    * non-convolution readers of a tensor that no convolution produced (the residual Adds reading
      a block input, the context path reading ``trans``): skip connections stay more accurate in
      FP32, and ONNX Runtime's CPU provider can then fuse every INT8 convolution (its x86 s8->u8
      rewrite needs a QuantizeLinear with a single reader).

    Convolution outputs keep their Q/DQ for their other readers (an INT8 convolution with INT8
    output, which both TensorRT and ONNX Runtime fuse).
    """
    producers, consumers = _producers(model), _consumers(model)
    int8_convs = {n.name for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 1
                  and (w := producers.get(n.input[1])) is not None and w.op_type == "DequantizeLinear"}
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        source = producers.get(q.input[0])
        from_conv = source is not None and source.op_type == "Conv"
        for reader in consumers.get(dq.output[0], []):
            if reader.name not in int8_convs and (reader.op_type == "Conv" or not from_conv):
                reader.input[:] = [q.input[0] if name == dq.output[0] else name for name in reader.input]
    consumers = _consumers(model)
    outputs = {o.name for o in model.graph.output}
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear" and not consumers.get(dq.output[0]) \
                and dq.output[0] not in outputs and len(consumers.get(q.output[0], [])) == 1:
            model.graph.node.remove(dq)
            model.graph.node.remove(q)
    used = {name for node in model.graph.node for name in node.input}
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)


def _own_quantization_constants(model: ModelProto) -> None:
    """Give each dedicated Q/DQ pair its own scale and zero-point initializers.

    quantize_static's dedicated pairs for a tensor read by several convolutions share their
    constants, so ONNX Runtime's common-subexpression elimination merges them back into one
    QuantizeLinear with several readers, which blocks its x86 INT8 convolution fusion (measured
    on r18: 8 of 33 convolutions left in float). Own constants keep the pairs apart; TensorRT
    wants dedicated pairs anyway.
    """
    inits = {init.name: init for init in model.graph.initializer}
    consumers = _consumers(model)
    used: set[str] = set()
    for q in [n for n in model.graph.node if n.op_type == "QuantizeLinear"]:
        if q.input[1] not in used:
            used.update(q.input[1:3])
            continue
        renamed = {}
        for name in q.input[1:3]:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[name])
            copy.name = f"{name}__{q.name}"
            model.graph.initializer.append(copy)
            renamed[name] = copy.name
        for node in (q, *consumers.get(q.output[0], [])):
            node.input[:] = [renamed.get(name, name) for name in node.input]


def _initializers(model: ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def activation_scales(model: ModelProto) -> dict[str, float]:
    """Original tensor name -> scale of its QuantizeLinear, in graph order (the TensorRT cache).

    Raises:
        Int8GraphError: a tensor quantized with two different scales.
    """
    inits = _initializers(model)
    scales: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        scale = float(inits[node.input[1]].reshape(-1)[0])
        if scales.setdefault(node.input[0], scale) != scale:
            raise Int8GraphError(f"tensor {node.input[0]!r} is quantized with two scales ({scales[node.input[0]]} "
                                 f"and {scale}); this is a bug in the INT8 export: report it")
    return scales


def quantized_conv_names(model: ModelProto) -> list[str]:
    """Convolutions whose data input comes from a DequantizeLinear (they run in INT8)."""
    producers = _producers(model)
    return [n.name for n in model.graph.node if n.op_type == "Conv"
            and (p := producers.get(n.input[0])) is not None and p.op_type == "DequantizeLinear"]


def _check_qdq_node(node: NodeProto, inits: dict[str, np.ndarray]) -> None:
    weight = inits.get(node.input[0])
    if weight is not None and weight.dtype == np.int32:
        raise Int8GraphError(f"{node.name} dequantizes an INT32 (bias) tensor; TensorRT rejects that: "
                             "biases must stay FP32")
    if len(node.input) < 3 or node.input[2] not in inits:
        raise Int8GraphError(f"{node.name} has no constant zero point; TensorRT needs zero point 0")
    zero = inits[node.input[2]]
    if zero.dtype != np.int8 or np.any(zero != 0):
        raise Int8GraphError(f"{node.name} uses a {zero.dtype} zero point {zero.reshape(-1)[:4].tolist()}; "
                             "TensorRT needs INT8 with zero point 0 (symmetric)")
    scale = inits[node.input[1]]
    if weight is None:
        if scale.size != 1:
            raise Int8GraphError(f"{node.name} quantizes an activation per channel; TensorRT needs per-tensor "
                                 "activation scales")
        return
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if weight.dtype != np.int8 or axis != 0 or scale.size != weight.shape[0]:
        raise Int8GraphError(f"{node.name} dequantizes a {weight.dtype} weight of shape {list(weight.shape)} with "
                             f"{scale.size} scale(s) on axis {axis}; weights must be INT8 per output channel (axis 0)")


def check_qdq_graph(model: ModelProto, fallback: Sequence[str] = ()) -> None:
    """Check the Q/DQ layout rules of the module docstring.

    Args:
        model: the Q/DQ graph.
        fallback: layers kept in float on purpose (besides :func:`float_node_names`).

    Raises:
        Int8GraphError: a Q/DQ node that is not symmetric INT8 (per-tensor activations,
            per-channel weights), an INT32 bias DequantizeLinear, a Q/DQ pair of a convolution
            input shared with other readers, a DequantizeLinear feeding a float node, quantized selector scores or
            ``masks``, or no INT8 convolution at all.
    """
    keep_float = [*float_node_names(model), *fallback]
    inits = _initializers(model)
    producers, consumers = _producers(model), _consumers(model)
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            _check_qdq_node(node, inits)
            readers = consumers.get(node.output[0], [])
            if len(readers) != 1 and (node.op_type == "QuantizeLinear" or any(r.op_type == "Conv" for r in readers)):
                raise Int8GraphError(f"{node.name} has {len(readers)} readers; every Q/DQ pair in front of a "
                                     "convolution must serve exactly that node (TensorRT): report this bug")
    by_name = {n.name: n for n in model.graph.node}
    for name in keep_float:
        node = by_name.get(name)
        if node is None:
            raise Int8GraphError(f"float node {name!r} is missing from the INT8 graph; report this bug")
        touched = [i for i in node.input if (p := producers.get(i)) is not None and p.op_type == "DequantizeLinear"]
        if touched:
            raise Int8GraphError(f"{name} must stay FP32 but its inputs {touched} come from DequantizeLinear; "
                                 "this is a bug in the INT8 export: report it")
    head = by_name[keep_float[0]]  # float_node_names lists the selector head first
    for tensor in (*head.output, MASKS_NAME):
        if any(c.op_type == "QuantizeLinear" for c in consumers.get(tensor, [])):
            raise Int8GraphError(f"{tensor} (selector scores / masks) is quantized; Top-K needs them in FP32: "
                                 "report this bug")
    if not quantized_conv_names(model):
        raise Int8GraphError("the INT8 graph has no INT8 convolution; check that the calibration ranges belong "
                             "to this fornet.onnx (--recalibrate)")
