"""The ONNX graphs nvinfer runs: the exported raw-input graph behind the input nvinfer produces.

nvinfer feeds ``N x 3 x H x W`` float planes computed as ``net-scale-factor * (pixel - offset[c])``:
one scale for all channels, so ImageNet's per-channel std cannot be expressed there. The export's
``--input raw`` graph already normalises inside (uint8 NHWC frames in); here it gets a float NCHW
input (scale 1, offsets 0: exact pixel values) followed by ``Transpose`` + ``Cast(uint8)``, and
one output:

* ``scores`` form (nvinfer ``network-type=2``): the ``logits`` output, ``N x C x H x W`` float;
  nvinfer runs the per-pixel argmax on the CPU and attaches ``NvDsInferSegmentationMeta``.
* ``labels`` form (``network-type=100`` + ``output-tensor-meta=1``): ``class_map``,
  ``N x H x W`` int32, the argmax in the graph (on the GPU); a probe reads the tensor meta.
"""

from __future__ import annotations

from pathlib import Path

from fornet.export.errors import ExportError

FORMS = ("scores", "labels")
#: nvinfer's input tensor.
INPUT_NAME = "input"
#: The labels form's output.
CLASS_MAP = "class_map"


def nvinfer_graph(onnx_path: Path, form: str, logits_output: bool) -> bytes:
    """The serialised ONNX model of ``form`` for nvinfer, built from a raw-input export.

    Raises:
        ExportError: the scores form of a labels-output export (the scores are not in the graph).
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
    front = [helper.make_node("Transpose", [INPUT_NAME], ["input_nhwc"], perm=[0, 2, 3, 1], name="nvinfer_to_nhwc"),
             helper.make_node("Cast", ["input_nhwc"], [image.name], to=TensorProto.UINT8, name="nvinfer_to_uint8")]
    output = graph.output[0]
    graph.ClearField("input")
    graph.input.append(planes)
    nodes = front + list(graph.node)
    if form == "labels":
        source = output.name
        if logits_output:
            nodes.append(helper.make_node("ArgMax", [source], ["class_argmax"], axis=1, keepdims=0,
                                          name="class_argmax"))
            source = "class_argmax"
        nodes.append(helper.make_node("Cast", [source], [CLASS_MAP], to=TensorProto.INT32, name="class_map_int32"))
        output = helper.make_tensor_value_info(CLASS_MAP, TensorProto.INT32, [batch_dim, height.dim_value,
                                                                              width.dim_value])
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.ClearField("output")
    graph.output.append(output)
    onnx.checker.check_model(model)
    return model.SerializeToString()
