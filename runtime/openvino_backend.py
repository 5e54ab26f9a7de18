"""OpenVINO backend: runs an exported ``fornet.onnx`` (FP32, FP16 or the INT8 Q/DQ ``fornet_int8.onnx``) on the CPU.

OpenVINO reads the ONNX file itself, but its ONNX frontend does not expand model-local functions of
a custom domain (it stops at ``No conversion rule found for operations: fornet.TopKGate``). The
backend therefore inlines the gate's function with :func:`onnx.inliner.inline_local_functions`
before handing the graph to OpenVINO, so the gate runs as the standard ops of its body (TopK,
ScatterElements, ...), as under ONNX Runtime; a ``--gate native`` file has nothing left to inline.

Precision (``--precision``, OpenVINO's ``INFERENCE_PRECISION_HINT`` for the float layers):

* ``fp32``: FP32 everywhere. Set explicitly, because OpenVINO's own default on a CPU with BF16 is BF16.
* ``bf16``: BF16 compute; refused on a CPU whose ``OPTIMIZATION_CAPABILITIES`` list no ``BF16``
  (AVX-512 BF16 or AMX), where OpenVINO would quietly fall back to FP32.
* ``auto``: ``bf16`` where the CPU reports BF16, else ``fp32``.

An INT8 Q/DQ file runs its quantized layers in INT8 whatever the precision; the precision applies
to the layers it leaves in float.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fornet.options import parse_device
from fornet.runtime.backend import Backend, BackendError, TensorSpec

if TYPE_CHECKING:
    from fornet.runtime.model_spec import ModelSpec

#: ``--precision`` -> OpenVINO's ``INFERENCE_PRECISION_HINT`` (``auto`` is resolved from the CPU first).
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: The CPU capability OpenVINO reports when it can run BF16 (AVX-512 BF16 or AMX).
BF16_CAPABILITY = "BF16"
#: How to install OpenVINO for this package (named in the missing-library error).
INSTALL_HINT = "pip install 'fornet-deploy[openvino]'"


def cpu_capabilities(core: Any = None) -> tuple[str, ...]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of this CPU (``BF16``, ``INT8``, ``FP32``, ...), from ``core``
    (an ``openvino.Core``; default: a new one)."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    return tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def resolve_precision(precision: str, capabilities: tuple[str, ...]) -> str:
    """``fp32`` or ``bf16`` for ``precision`` on a CPU with ``capabilities`` (see the module docstring).

    Raises:
        BackendError: an unknown precision, or ``bf16`` on a CPU without BF16.
    """
    has_bf16 = BF16_CAPABILITY in capabilities
    if precision == "auto":
        return "bf16" if has_bf16 else "fp32"
    if precision not in PRECISION_HINTS:
        raise BackendError(f"the openvino backend runs in auto, {' or '.join(PRECISION_HINTS)}, not {precision!r}")
    if precision == "bf16" and not has_bf16:
        raise BackendError(f"--precision bf16: this CPU reports no BF16 support to OpenVINO (it has "
                           f"{', '.join(capabilities)}); BF16 needs AVX-512 BF16 or AMX: pass --precision fp32 "
                           "(or auto)")
    return precision


def _spec(port: Any) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(shape, np.dtype(port.get_element_type().to_dtype()))


class OpenVinoBackend(Backend):
    """Run an ONNX file with OpenVINO on the CPU.

    Args:
        path: the ``.onnx`` file.
        device: ``"cpu"`` or ``"auto"`` (the CPU).
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (see the module docstring).
        threads: inference threads (``INFERENCE_NUM_THREADS``; default: OpenVINO's choice, one per core).
    """

    NAME = "openvino"
    SUFFIXES = (".onnx",)
    #: onnx inlines the gate's function (a core dependency, but not in the torch- and onnx-free serving environment).
    LIBRARIES = (("openvino", INSTALL_HINT), ("onnx", "pip install onnx"))
    DEVICES = frozenset({"cpu"})
    PRECISIONS = ("auto", *PRECISION_HINTS)

    def __init__(self, path: str | os.PathLike[str], device: int | str = "auto", precision: str = "auto",
                 threads: int | None = None) -> None:
        super().__init__(f"OpenVinoBackend({Path(path).name})", parse_device(device))
        if self.device not in ("auto", "cpu"):
            raise BackendError(f"the openvino backend runs on the CPU, not {self.device}; pass --device cpu")
        if precision not in self.PRECISIONS:
            raise BackendError(f"precision must be one of {', '.join(self.PRECISIONS)}, got {precision!r}")
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}; omit it for OpenVINO's default")
        self.path = Path(path)
        self.precision = precision
        self.threads = threads
        self._compiled: Any = None
        self._request: Any = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenVinoBackend:
        """The backend of a spec (device, precision, threads)."""
        return cls(spec.path, device=spec.device, precision=spec.precision, threads=spec.threads)

    @property
    def label(self) -> str:
        """``openvino-bf16-cpu`` or ``openvino-fp32-cpu`` once active (reports compare the two)."""
        return f"{self.NAME}-{self.inference_precision}-cpu" if self.inference_precision else super().label

    def _read_graph(self) -> bytes:
        """The ONNX file with its model-local functions (the TopKGate) inlined, serialized."""
        import onnx
        from onnx import inliner

        if not self.path.is_file():
            raise BackendError(f"ONNX file not found: {self.path}; export one with fornet-export or fix the path")
        try:
            graph = onnx.load(self.path)
        except Exception as exc:  # protobuf's DecodeError and onnx's own errors
            raise BackendError(f"cannot read {self.path} as an ONNX model ({type(exc).__name__}: {exc}); the file "
                               "may be truncated or not an ONNX model: export it again") from exc
        return inliner.inline_local_functions(graph).SerializeToString()

    def _activate_impl(self) -> None:
        import openvino as ov

        core = ov.Core()
        precision = resolve_precision(self.precision, cpu_capabilities(core))
        graph = self._read_graph()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                                  "PERFORMANCE_HINT": "LATENCY"}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            model = core.read_model(graph)
            self._compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:  # OpenVINO raises RuntimeError (or a subclass) with a long log
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"OpenVINO cannot compile {self.path} ({first}); run it with --backend onnxruntime, "
                               "or export it again") from exc
        compiled_hint = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if compiled_hint != PRECISION_HINTS[precision]:
            raise BackendError(f"OpenVINO compiled {self.path.name} in {compiled_hint}, not the requested "
                               f"{PRECISION_HINTS[precision]}; pass --precision fp32")
        self._inputs = [port.get_any_name() for port in self._compiled.inputs]
        self._outputs = [port.get_any_name() for port in self._compiled.outputs]
        self._request = self._compiled.create_infer_request()
        self.device = "cpu"
        self.inference_precision = precision

    def _deactivate_impl(self) -> None:
        self._request = None
        self._compiled = None

    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        return {name: _spec(self._compiled.input(name)) for name in self._inputs}

    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        return {name: _spec(self._compiled.output(name)) for name in self._outputs}

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer(feed)
        return {name: results[name] for name in self._outputs}
