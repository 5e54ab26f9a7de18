"""ONNX Runtime backend: runs an exported ``fornet.onnx`` (FP32 or FP16) with no extra library.

ONNX Runtime runs the ``fornet::TopKGate`` node through the model-local function the exporter
attaches, so plain ``onnxruntime`` suffices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fornet.options import cuda_index, parse_device
from fornet.runtime.backend import Backend, BackendError, TensorSpec

if TYPE_CHECKING:
    from fornet.runtime.model_spec import ModelSpec

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


def _spec(arg: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise BackendError(f"tensor {arg.name!r} has type {arg.type}, which this backend does not map "
                           "to numpy; export the model with float, integer or bool I/O")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(shape, np.dtype(dtype))


class OnnxRuntimeBackend(Backend):
    """Run an ONNX file with ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        device: ``"cpu"`` (the CPU provider), ``"cuda:N"`` (the CUDA provider on GPU N, which must be
            installed) or ``"auto"`` (CUDA on GPU 0 when this onnxruntime build has it, else the CPU).
        providers: execution providers in priority order, instead of those ``device`` implies.
        threads: intra-op threads (default: ONNX Runtime's choice, one per core).
        optimize: apply ONNX Runtime's graph optimisations (off: every node runs as written, e.g. to
            score a Q/DQ graph with exactly the numerics its Q/DQ nodes define).
    """

    NAME = "onnxruntime"
    SUFFIXES = (".onnx",)
    LIBRARIES = (("onnxruntime", "pip install onnxruntime"),)
    DEVICES = frozenset({"cpu", "cuda"})

    def __init__(self, path: str | os.PathLike[str], device: int | str = "auto", providers: Sequence[str] | None = None,
                 threads: int | None = None, optimize: bool = True) -> None:
        super().__init__(f"OnnxRuntimeBackend({Path(path).name})", parse_device(device))
        self.path = Path(path)
        self.providers = list(providers) if providers is not None else None
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}; omit it for ONNX Runtime's default")
        self.threads = threads
        self.optimize = optimize
        self._session: Any = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OnnxRuntimeBackend:
        """The backend of a spec (device, threads)."""
        return cls(spec.path, device=spec.device, threads=spec.threads)

    def _providers(self, available: Sequence[str]) -> list[Any]:
        """The execution providers to ask for, checked against those this onnxruntime build has."""
        if self.providers is not None:
            unknown = [p for p in self.providers if p not in available]
            if unknown:
                raise BackendError(f"execution provider(s) {unknown} are not in this onnxruntime build; "
                                   f"available: {list(available)}")
            return list(self.providers)
        if self.device == "cpu" or (self.device == "auto" and "CUDAExecutionProvider" not in available):
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" not in available:
            raise BackendError(f"--device {self.device}: this onnxruntime build has no CUDA provider (it has "
                               f"{', '.join(available)}); install onnxruntime-gpu or pass --device cpu")
        return [("CUDAExecutionProvider", {"device_id": cuda_index(self.device)}), "CPUExecutionProvider"]

    def _activate_impl(self) -> None:
        import onnxruntime as ort

        if not self.path.is_file():
            raise BackendError(f"ONNX file not found: {self.path}; export one with fornet-export or fix the path")
        providers = self._providers(ort.get_available_providers())
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        # ONNX Runtime's threads spin for a while after each run by default, which takes the CPUs from the
        # pre/post-processing that follows (at 1024x2048 on 2 vCPUs: post 25 -> 17.5 ms, inference unchanged).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not self.optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BackendError(f"ONNX Runtime cannot load {self.path} ({first}); the file may be "
                               "truncated or not an ONNX model: export it again") from exc
        first_provider = self._session.get_providers()[0]
        self.device = "cpu" if first_provider == "CPUExecutionProvider" else f"cuda:{cuda_index(self.device)}"

    def _deactivate_impl(self) -> None:
        self._session = None

    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        return {arg.name: _spec(arg) for arg in self._session.get_inputs()}

    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        return {arg.name: _spec(arg) for arg in self._session.get_outputs()}

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [arg.name for arg in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, feed), strict=True))
