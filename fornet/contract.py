"""Names that the exporter, the TensorRT plugin, the runtimes and every sidecar must agree on.

Defined once here and imported everywhere else (the C++ plugin, which cannot import Python,
repeats the op identity in ``plugins/topk_gate_plugin.h``; a test compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CustomOp:
    """The identity of a custom ONNX node and of the TensorRT plugin that implements it.

    TensorRT's ONNX parser finds the plugin by the node's ``op_type`` (= :attr:`name`), its
    ``plugin_version`` and ``plugin_namespace`` string attributes (the node domain is read only
    from TensorRT 10.10, so the namespace is always written as an attribute too).
    """

    name: str
    domain: str
    opset_version: int
    plugin_version: str
    attributes: tuple[str, ...]

    @property
    def plugin_namespace(self) -> str:
        """The TensorRT plugin namespace: the ONNX domain."""
        return self.domain

    @property
    def qualified_name(self) -> str:
        """``domain::name``, as the TorchScript exporter spells a custom op."""
        return f"{self.domain}::{self.name}"

    @property
    def creator(self) -> str:
        """``name/version/namespace``, the TensorRT plugin registry key."""
        return f"{self.name}/{self.plugin_version}/{self.plugin_namespace}"

    def matches(self, domain: str, op_type: str) -> bool:
        """Whether an ONNX node or function ``(domain, op_type)`` is this op."""
        return (domain, op_type) == (self.domain, self.name)


#: Attribute names of the TopKGate node (the plugin's field names are the first two).
ATTR_RATIOS = "ratios"
ATTR_KS = "ks"
ATTR_PLUGIN_VERSION = "plugin_version"
ATTR_PLUGIN_NAMESPACE = "plugin_namespace"

#: FoR-Net's Top-K gate: ``(features, scores) -> (gated_0 .. gated_{R-1}, masks)``.
TOPK_GATE = CustomOp(
    name="TopKGate", domain="fornet", opset_version=1, plugin_version="1",
    attributes=(ATTR_RATIOS, ATTR_KS, ATTR_PLUGIN_VERSION, ATTR_PLUGIN_NAMESPACE),
)

#: Graph input and output tensor names of every exported model.
INPUT_NAME = "image"
LOGITS_NAME = "logits"
LABELS_NAME = "labels"
MASKS_NAME = "masks"
#: The gate's own input and output names (inside the graph and the local function).
GATE_INPUTS = ("features", "scores")


def gated_output_names(num_ratios: int) -> list[str]:
    """The gate's outputs: ``gated_0 .. gated_{R-1}`` then ``masks``."""
    return [f"gated_{i}" for i in range(num_ratios)] + [MASKS_NAME]
