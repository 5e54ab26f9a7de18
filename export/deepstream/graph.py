"""The ONNX graphs nvinfer runs: the exported raw-input graph behind the input nvinfer produces.

nvinfer feeds ``N x 3 x H x W`` float planes computed as ``net-scale-factor * (pixel - offset[c])``:
one scale for all channels, so ImageNet's per-channel std cannot be expressed there. The export's
``--input raw`` graph already normalises inside (uint8 NHWC frames in, read only by ``Cast`` nodes);
here it gets a float NCHW input (scale 1, offsets 0: exact pixel values) and a ``Transpose`` to NHWC
that feeds those ``Cast`` nodes directly, so no UINT8 tensor is left inside the graph (TensorRT's
ONNX parser refuses one: "TensorRT does not support UINT8 types for intermediate tensors"). One output:

* ``scores`` form (nvinfer ``network-type=2``): ``probabilities``, the ``Softmax`` of the logits over
  the classes, ``N x C x H x W`` float. nvinfer's segmentation parser labels a pixel with the first
  class whose score is the largest of those above ``segmentation-threshold`` (and above -1), else -1;
  probabilities are in (0, 1] and the best one is at least 1/C, so with threshold 0 every pixel gets
  the argmax of the logits (raw logits would leave every pixel whose best logit is <= 0 unlabelled).
  nvinfer runs that loop on the CPU and attaches ``NvDsInferSegmentationMeta``.
* ``labels`` form (``network-type=100`` + ``output-tensor-meta=1``): ``class_map``,
  ``N x H x W`` int32, the argmax in the graph (on the GPU); a probe reads the tensor meta.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fornet.export.errors import ExportError

if TYPE_CHECKING:
    from onnx import NodeProto, ValueInfoProto

FORMS = ("scores", "labels")
#: nvinfer's input tensor.
INPUT_NAME = "input"
#: The scores form's output: per-class probabilities.
PROBABILITIES = "probabilities"
#: The labels form's output.
CLASS_MAP = "class_map"


def nvinfer_graph(onnx_path: Path, form: str, logits_output: bool) -> bytes:
    """The serialised ONNX model of ``form`` for nvinfer, built from a raw-input export.

    Raises:
        ExportError: the scores form of a labels-output export (the scores are not in the graph), or a
            raw input read by anything but ``Cast`` (not an export of this project).
    """
    import onnx
    from onnx import TensorProto, helper

    if form not in FORMS:
        raise ExportError(f"unknown nvinfer form {form!r}; choose {', '.join(FORMS)}")
    if form == "scores" and not logits_output:
        raise ExportError("the scores form (network-type=2) needs class scores: export with --output logits")
    model = onnx.load(str(onnx_path))
    graph = model.graph
    image = graph.input[0]
    batch, height, width, _ = image.type.tensor_type.shape.dim
    batch_dim = batch.dim_param or batch.dim_value
    planes = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch_dim, 3, height.dim_value,
                                                                            width.dim_value])
    readers = [node for node in graph.node if image.name in node.input]
    if any(node.op_type != "Cast" for node in readers):
        raise ExportError(f"{onnx_path}: the raw input {image.name!r} must be read by Cast nodes only; re-export it "
                          "with fornet export --input raw")
    for node in readers:
        node.input[:] = ["input_nhwc" if name == image.name else name for name in node.input]
    front = [helper.make_node("Transpose", [INPUT_NAME], ["input_nhwc"], perm=[0, 2, 3, 1], name="nvinfer_to_nhwc")]
    graph.ClearField("input")
    graph.input.append(planes)
    nodes = front + list(graph.node)
    output = graph.output[0]
    if form == "scores":
        nodes.append(helper.make_node("Softmax", [output.name], [PROBABILITIES], axis=1, name="class_softmax"))
        output = _renamed(output, PROBABILITIES)
    else:
        nodes += _class_map_tail(nodes, output.name, logits_output)
        output = helper.make_tensor_value_info(CLASS_MAP, TensorProto.INT32, [batch_dim, height.dim_value,
                                                                              width.dim_value])
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.ClearField("output")
    graph.output.append(output)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _renamed(value: ValueInfoProto, name: str) -> ValueInfoProto:
    """``value`` (type and shape) under another name."""
    from onnx import ValueInfoProto

    renamed = ValueInfoProto()
    renamed.CopyFrom(value)
    renamed.name = name
    return renamed


def _class_map_tail(nodes: list[NodeProto], source: str, logits_output: bool) -> list[NodeProto]:
    """The nodes that end the labels form in ``class_map`` (int32): an ArgMax of the logits, or the export's own
    label Cast retargeted to int32 (so its uint8 labels never become an intermediate tensor)."""
    from onnx import TensorProto, helper

    if logits_output:
        return [helper.make_node("ArgMax", [source], ["class_argmax"], axis=1, keepdims=0, name="class_argmax"),
                helper.make_node("Cast", ["class_argmax"], [CLASS_MAP], to=TensorProto.INT32, name="class_map_int32")]
    producer = next(node for node in nodes if source in node.output)
    if producer.op_type != "Cast":
        return [helper.make_node("Cast", [source], [CLASS_MAP], to=TensorProto.INT32, name="class_map_int32")]
    producer.output[:] = [CLASS_MAP if name == source else name for name in producer.output]
    for attribute in producer.attribute:
        if attribute.name == "to":
            attribute.i = TensorProto.INT32
    return []
