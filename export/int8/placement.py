"""Does a Q/DQ graph follow TensorRT's placement rules? Every place TensorRT could not run in INT8.

TensorRT fuses explicit quantization into INT8 kernels when (TensorRT developer guide, "Q/DQ
layer placement"; NVIDIA's ModelOpt and pytorch-quantization place them this way):

* every input of a weighted layer is quantized: the data input and the weights of each ``Conv``
  come out of a ``DequantizeLinear``;
* the residual input of a skip-connection ``Add`` is quantized: when one input of an ``Add`` is
  the output of a ``Conv`` (the fusable branch), the other one comes out of a
  ``DequantizeLinear``; with a float residual the convolution's output stays float and the
  trailing quantization cannot fuse;
* the outputs of weighted layers are not quantized: a ``QuantizeLinear`` straight on a ``Conv``
  output that feeds an ``Add`` splits the Conv+Add fusion, unless it is that ``Add``'s residual
  (a downsample convolution next to the fused branch).

:func:`placement_issues` reports each break of these rules; nodes meant to stay float (the
selector head, the gate, layers kept in float by a fallback) are passed as ``expected_float``.
"""
# ruff: noqa: TID253

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from onnx import ModelProto, NodeProto


@dataclass(frozen=True)
class PlacementIssue:
    """One input (or output) that keeps a convolution or an ``Add`` out of INT8 in TensorRT."""

    node: str
    op_type: str
    tensor: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op_type} {self.node!r}: {self.tensor!r} {self.reason}"


def _index(model: ModelProto) -> tuple[dict[str, NodeProto], dict[str, list[NodeProto]], set[str]]:
    producers: dict[str, NodeProto] = {}
    consumers: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        for name in node.output:
            producers[name] = node
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    return producers, consumers, constants


def placement_issues(model: ModelProto, expected_float: Iterable[str] = ()) -> list[PlacementIssue]:
    """Every convolution or ``Add`` input of ``model`` that TensorRT could not run in INT8."""
    producers, consumers, constants = _index(model)
    skip = set(expected_float)
    issues: list[PlacementIssue] = []

    def dequantized(tensor: str) -> bool:
        producer = producers.get(tensor)
        return producer is not None and producer.op_type == "DequantizeLinear"

    def from_conv(tensor: str) -> bool:
        producer = producers.get(tensor)
        return producer is not None and producer.op_type == "Conv"

    for node in model.graph.node:
        if node.name in skip:
            continue
        if node.op_type == "Conv":
            for tensor, what in zip(node.input[:2], ("data input", "weights"), strict=False):
                if not dequantized(tensor):
                    issues.append(PlacementIssue(node.name, "Conv", tensor,
                                                 f"({what}) does not come out of a DequantizeLinear"))
            quantizers = [c for c in consumers.get(node.output[0], []) if c.op_type == "QuantizeLinear"]
            adds = [reader for q in quantizers for dq in consumers.get(q.output[0], [])
                    for reader in consumers.get(dq.output[0], []) if reader.op_type == "Add"]
            # fine when it is the residual of an Add whose other input is the fused convolution's output
            if any(not any(from_conv(t) for t in add.input) for add in adds):
                issues.append(PlacementIssue(node.name, "Conv", node.output[0],
                                             "(output) is quantized before an Add, which splits the Conv+Add fusion"))
        elif node.op_type == "Add":
            activations = [t for t in node.input if t not in constants]
            if len(activations) != 2 or not any(from_conv(t) for t in activations):
                continue
            # the residual: the input that is not the fused convolution's output (both are: the second one)
            residual = next((t for t in activations if not from_conv(t)), activations[1])
            if not dequantized(residual):
                issues.append(PlacementIssue(node.name, "Add", residual,
                                             "(residual input) does not come out of a DequantizeLinear, so the "
                                             "convolution before this Add keeps its output in float"))
    return issues
