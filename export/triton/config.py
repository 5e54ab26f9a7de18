"""``config.pbtxt``: Triton's model configuration, written from a typed description.

Only the fields this project uses are modelled; :mod:`fornet.export.triton.check` parses every
written file with Triton's own protobuf schema, so a typo here cannot reach a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fornet.export.errors import ExportError

#: numpy dtype -> Triton data type.
NUMPY_TO_TRITON = {
    np.dtype(np.uint8): "TYPE_UINT8", np.dtype(np.int8): "TYPE_INT8", np.dtype(np.int32): "TYPE_INT32",
    np.dtype(np.int64): "TYPE_INT64", np.dtype(np.float16): "TYPE_FP16", np.dtype(np.float32): "TYPE_FP32",
    np.dtype(np.bool_): "TYPE_BOOL",
}
#: TensorRT ``DataType`` name (as the plan metadata records it) -> Triton data type.
TENSORRT_TO_TRITON = {
    "FLOAT": "TYPE_FP32", "HALF": "TYPE_FP16", "BF16": "TYPE_BF16", "INT8": "TYPE_INT8", "UINT8": "TYPE_UINT8",
    "INT32": "TYPE_INT32", "INT64": "TYPE_INT64", "BOOL": "TYPE_BOOL",
}
INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}


def triton_dtype(dtype: np.dtype) -> str:
    """The Triton data type of a numpy dtype."""
    try:
        return NUMPY_TO_TRITON[np.dtype(dtype)]
    except KeyError:
        raise ExportError(f"no Triton data type for {dtype}; export with float32/float16 or uint8/int32 I/O") from None


@dataclass(frozen=True)
class TensorConfig:
    """One input or output: name, Triton data type and dims (without the batch dim when batching)."""

    name: str
    data_type: str
    dims: tuple[int, ...]

    def render(self) -> str:
        """The ``{ name: ... }`` block."""
        return (f'  {{\n    name: "{self.name}"\n    data_type: {self.data_type}\n'
                f'    dims: [ {", ".join(str(d) for d in self.dims)} ]\n  }}')


@dataclass(frozen=True)
class ModelConfig:
    """The parts of a Triton model configuration that a FoR-Net model needs.

    Attributes:
        name: model name (= its folder).
        platform: ``tensorrt_plan`` or ``onnxruntime_onnx`` (empty for a backend model).
        backend: ``python`` for the Python-backend model (empty otherwise).
        max_batch_size: 0 for a model whose dims include a fixed batch, else the largest batch.
        inputs, outputs: the tensors.
        dynamic_batching: let Triton batch requests (needs ``max_batch_size > 0``).
        queue_delay_us: how long the batcher waits to fill a batch.
        max_queue_size: requests beyond it are refused (0: unbounded).
        instance_kind: ``KIND_CPU`` or ``KIND_GPU``.
        instance_count: model instances.
        parameters: string parameters handed to the model (Python backend).
    """

    name: str
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    max_batch_size: int
    platform: str = ""
    backend: str = ""
    dynamic_batching: bool = False
    queue_delay_us: int = 0
    max_queue_size: int = 0
    instance_kind: str = "KIND_GPU"
    instance_count: int = 1
    parameters: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        """The ``config.pbtxt`` text."""
        lines = [f'name: "{self.name}"']
        lines.append(f'platform: "{self.platform}"' if self.platform else f'backend: "{self.backend}"')
        lines.append(f"max_batch_size: {self.max_batch_size}")
        lines.append("input [\n" + ",\n".join(t.render() for t in self.inputs) + "\n]")
        lines.append("output [\n" + ",\n".join(t.render() for t in self.outputs) + "\n]")
        if self.dynamic_batching:
            queue = (f"\n  default_queue_policy {{ max_queue_size: {self.max_queue_size} timeout_action: REJECT }}"
                     if self.max_queue_size else "")
            lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {self.queue_delay_us}{queue}\n}}")
        lines.append(f"instance_group [ {{ kind: {self.instance_kind} count: {self.instance_count} }} ]")
        for key, value in self.parameters.items():
            lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
        return "\n".join(lines) + "\n"
