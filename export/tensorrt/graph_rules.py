"""Rules of TensorRT's ONNX parser that an exported graph must follow, checked without TensorRT.

UINT8: the parser refuses a node output of type UINT8 that is not a graph output ("TensorRT does
not support UINT8 types for intermediate tensors!", onnx-tensorrt ``ModelImporter.cpp``,
``parseNode``). So a uint8 graph input must feed nothing but ``Cast`` nodes and a uint8 graph
output must come straight out of a ``Cast``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fornet.lazy import lazy_import

if TYPE_CHECKING:
    import onnx
else:
    onnx = lazy_import("onnx")  # fornet build --help needs no onnx


def _uint8_names(model: onnx.ModelProto) -> set[str]:
    """Names of every tensor the (shape-inferred) graph types as UINT8."""
    uint8 = onnx.TensorProto.UINT8
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    values = [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]
    names = {value.name for value in values if value.type.tensor_type.elem_type == uint8}
    for node in inferred.graph.node:
        if node.op_type == "Cast":
            to = next((attr.i for attr in node.attribute if attr.name == "to"), None)
            if to == uint8:
                names.update(node.output)
    names.update(init.name for init in inferred.graph.initializer if init.data_type == uint8)
    return names


def uint8_violations(model: onnx.ModelProto) -> list[str]:
    """Every place where ``model`` holds a UINT8 tensor TensorRT's parser would reject (empty: none).

    Checks the main graph: UINT8 tensors other than graph inputs and outputs, uint8 inputs read by
    anything but ``Cast``, uint8 outputs produced by anything but ``Cast``.
    """
    uint8 = _uint8_names(model)
    graph_inputs = {value.name for value in model.graph.input}
    graph_outputs = {value.name for value in model.graph.output}
    problems = [f"intermediate tensor {name!r} is UINT8" for name in sorted(uint8 - graph_inputs - graph_outputs)]
    for node in model.graph.node:
        label = f"{node.op_type} node {node.name!r}"
        if node.op_type != "Cast":
            problems += [f"{label} reads the UINT8 graph input {name!r} (it must go straight into a Cast)"
                         for name in node.input if name in uint8 and name in graph_inputs]
            problems += [f"{label} writes the UINT8 graph output {name!r} (it must come out of a Cast)"
                         for name in node.output if name in uint8 and name in graph_outputs]
    return problems
