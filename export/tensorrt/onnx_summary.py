"""What the TensorRT build needs to know about an ONNX file, read with ``onnx`` (no TensorRT).

Whether the graph holds a ``fornet::TopKGate`` node (then the plugin library must be loaded) and
the model-local function of that name, its inputs (for the optimisation profile and the trtexec
shapes), the precision it was exported in (strongly typed builds take the precision from the
graph) and the file's sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fornet.contract import TOPK_GATE
from fornet.export.tensorrt.errors import TensorRTBuildError
from fornet.hashing import sha256_file
from fornet.readable import check_readable

if TYPE_CHECKING:
    import onnx

_QUANTIZE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


class OnnxInputError(TensorRTBuildError):
    """The ONNX file is missing or unreadable."""


@dataclass(frozen=True)
class OnnxInput:
    """One graph input or output; ``shape`` holds ``None`` for a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class OnnxSummary:
    """The facts about one ONNX file that the engine build uses."""

    path: Path
    sha256: str
    inputs: tuple[OnnxInput, ...]
    outputs: tuple[str, ...]
    output_tensors: tuple[OnnxInput, ...]
    gate_nodes: int
    gate_function: bool
    graph_precision: str

    @property
    def needs_plugin(self) -> bool:
        """Whether the graph holds a ``fornet::TopKGate`` node (the native gate has none)."""
        return self.gate_nodes > 0


def inspect_onnx(path: str | os.PathLike[str]) -> OnnxSummary:
    """Read the graph structure (not the external weights) of ``path``.

    ``graph_precision`` is ``"int8"`` when the graph holds Q/DQ nodes, ``"fp16"`` when any tensor is
    float16, else ``"fp32"``.

    Raises:
        OnnxInputError: the file is missing or is not an ONNX model.
    """
    import onnx

    source = Path(path)
    if not source.is_file():
        raise OnnxInputError(f"ONNX file {source} not found; export one with `fornet-export` first")
    check_readable(source, "ONNX file")
    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... on a corrupt file
        raise OnnxInputError(f"{source} is not a readable ONNX model ({exc}); re-export it") from exc
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = tuple(_tensor(value) for value in graph.input if value.name not in initializers)
    gate_nodes = sum(1 for node in graph.node if TOPK_GATE.matches(node.domain, node.op_type))
    return OnnxSummary(
        path=source.resolve(),
        sha256=sha256_file(source),
        inputs=inputs,
        outputs=tuple(value.name for value in graph.output),
        output_tensors=tuple(_tensor(value) for value in graph.output),
        gate_nodes=gate_nodes,
        gate_function=any(TOPK_GATE.matches(f.domain, f.name) for f in model.functions),
        graph_precision=_precision(model),
    )


def _tensor(value: onnx.ValueInfoProto) -> OnnxInput:
    import onnx

    return OnnxInput(
        name=value.name,
        shape=tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim),
        dtype=onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type).lower(),
    )


def _precision(model: onnx.ModelProto) -> str:
    import onnx

    graph = model.graph
    nodes = list(graph.node) + [node for function in model.functions for node in function.node]
    if any(node.op_type in _QUANTIZE_OPS for node in nodes):
        return "int8"
    float16 = onnx.TensorProto.FLOAT16
    typed_values = list(graph.input) + list(graph.output) + list(graph.value_info)
    if any(value.type.tensor_type.elem_type == float16 for value in typed_values):
        return "fp16"
    if any(tensor.data_type == float16 for tensor in graph.initializer):
        return "fp16"
    casts_to_half = (
        attribute.i == float16
        for node in nodes
        if node.op_type == "Cast"
        for attribute in node.attribute
        if attribute.name == "to"
    )
    return "fp16" if any(casts_to_half) else "fp32"
