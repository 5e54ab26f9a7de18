"""TensorRT backend: a serialized plan run with pycuda on one GPU (TensorRT 10.3 ... 11.x).

Loading checks, in order, with an error naming the fix for each: the plan exists; TensorRT is
importable; the plan's sidecar (``<plan>.json``) says it was built by this TensorRT release for
this GPU generation; pycuda and a GPU are present; the TopKGate plugin library is loaded when the
plan holds the plugin (before deserialising); TensorRT deserialises the plan (a failure is
classified from TensorRT's log: another version, a missing plugin, not a plan).

Running: the device's primary context is made current for every call (so any thread may call),
one non-default stream, device buffers sized for the largest batch and pinned host buffers for
the copies, optionally a CUDA graph around ``execute_async_v3`` (recaptured after a batch change). :meth:`infer`
copies host arrays in and out (the "engine + copies" scope); the GPU pre/post path of the
segmenter uses :meth:`device_pointer`, :meth:`set_batch` and :meth:`enqueue` directly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fornet.errors import FornetError
from fornet.hashing import sha256_file
from fornet.options import cuda_index, parse_device
from fornet.runtime.backend import Backend, BackendError, BackendInputError, TensorSpec
from fornet.runtime.cuda.context import CudaContext
from fornet.runtime.cuda.graph import CudaGraph
from fornet.runtime.errors import EngineLoadError, TensorRTError
from fornet.runtime.model_io import ModelSidecar
from fornet.runtime.tensorrt.env import LogTail, make_logger, require_tensorrt
from fornet.runtime.tensorrt.plan_metadata import EngineMetadata, check_plan_binding, onnx_sidecar_for_plan
from fornet.runtime.tensorrt.plugins import PluginLibraryError, find_plugin_library, load_plugin_library

if TYPE_CHECKING:
    import tensorrt as trt

    from fornet.runtime.model_spec import ModelSpec

_log = logging.getLogger(__name__)

#: TensorRT data type name -> NumPy dtype (the types a FoR-Net engine's I/O can have).
_NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "UINT8": np.uint8,
                "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}


class EngineVersionError(EngineLoadError):
    """The plan was built by another TensorRT release or for another GPU generation."""


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0)``."""
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def check_engine_compatibility(plan: Path, metadata: EngineMetadata | None, tensorrt_version: str,
                               compute_capability: tuple[int, int] | None) -> None:
    """Refuse a plan whose sidecar says it cannot run here (no sidecar: TensorRT decides).

    A plan runs only on the TensorRT release (major.minor.patch) that built it, unless it was built
    version-compatible (then on that release or a newer one), and only on the GPU generation it was
    built for, unless it was built hardware-compatible.

    Raises:
        EngineVersionError: naming both versions (or GPUs) and how to rebuild.
    """
    if metadata is None:
        return
    options = metadata.build_options
    rebuild = metadata.fornet_build_command
    built = metadata.tensorrt_version
    if built and _version_tuple(built) != _version_tuple(tensorrt_version):
        newer = _version_tuple(tensorrt_version) > _version_tuple(built)
        if not (options.version_compatible and newer):
            raise EngineVersionError(
                f"{plan.name} was built by TensorRT {built} but this machine has TensorRT {tensorrt_version}; a plan "
                f"runs only on the TensorRT release that built it: rebuild it here (`{rebuild}`), or build it with "
                "--version-compatible to run it on later releases"
            )
    gpu = metadata.gpu
    built_cc = gpu.compute_capability
    here = None if compute_capability is None else ".".join(map(str, compute_capability))
    if built_cc and here and built_cc != here and options.hardware_compat == "none":
        raise EngineVersionError(
            f"{plan.name} was built for {gpu.name or 'a GPU'} (compute capability {built_cc}) but this GPU has "
            f"compute capability {here}; rebuild the plan on this GPU (`{rebuild}`), or build with "
            "--hardware-compat ampere+"
        )


def check_plugin_library(plan: Path, metadata: EngineMetadata | None, library: Path) -> None:
    """Refuse, before it is loaded, a plugin library other than the one the plan was built with.

    A plan stores the plugin's serialised fields for the library that built it; another build of the
    library (a rebuilt checkout, another TensorRT's headers) may read them differently. The plan's
    sidecar records the library's sha256 (no sidecar or no plugin recorded: nothing to compare).

    Raises:
        EngineVersionError: naming both libraries, both digests and how to rebuild.
    """
    if metadata is None or metadata.plugin is None or metadata.plugin.serialized_in_plan:
        return
    recorded = metadata.plugin
    actual = sha256_file(library)
    if actual != recorded.sha256:
        raise EngineVersionError(
            f"{plan.name} was built with the TopKGate plugin {recorded.library} (sha256 {recorded.sha256[:12]}...) "
            f"but the library found here, {library}, has sha256 {actual[:12]}...: a plan only loads with the plugin "
            f"build it was made with. Rebuild the plan with this library (`{metadata.fornet_build_command}`), "
            "or pass --plugin the library it was built with"
        )


def allows_host_code(metadata: EngineMetadata | None) -> bool:
    """Whether to let TensorRT deserialise host code embedded in the plan.

    A plan built with ``BuilderFlag.VERSION_COMPATIBLE`` embeds the lean runtime (and, with
    ``plugins_to_serialize``, the plugin library): host executable code, which
    ``IRuntime::setEngineHostCodeAllowed`` refuses by default (TensorRT 10.3 ``NvInferRuntime.h``;
    trtexec and Polygraphy opt in for such plans). Only plans whose sidecar says fornet-build made
    them version-compatible get the opt-in; any other plan keeps TensorRT's safe default.
    """
    return metadata is not None and metadata.build_options.version_compatible


def classify_load_failure(plan: Path, version: str, log: str, plugin_error: Exception | None) -> FornetError:
    """The error for a plan TensorRT would not deserialise, judged from TensorRT's log."""
    lowered = log.lower()
    if "host code" in lowered:
        return EngineLoadError(f"{plan} embeds host code (a --version-compatible plan) and TensorRT {version} was "
                               "not allowed to load it: keep the plan's .plan.json sidecar next to it (it records "
                               f"--version-compatible), or rebuild without --version-compatible. Log:\n{log}")
    if "magic tag" in lowered:
        return EngineLoadError(f"{plan} is not a TensorRT plan (TensorRT {version}: magic tag mismatch); pass the "
                               f".plan written by fornet-build or trtexec --saveEngine. Log:\n{log}")
    if "version" in lowered and ("not compatible" in lowered or "does not match" in lowered
                                 or "serialization" in lowered):
        return EngineVersionError(f"{plan} was built by another TensorRT version than this {version}; rebuild it "
                                  f"here with fornet-build. Log:\n{log}")
    if "plugin" in lowered or plugin_error is not None:
        reason = f" (loading it failed: {plugin_error})" if plugin_error is not None else ""
        return PluginLibraryError(f"TensorRT {version} cannot deserialise {plan}: it needs the TopKGate plugin "
                                  f"library{reason}; build it with `fornet-build-plugin` and pass --plugin / "
                                  f"$FORNET_PLUGIN_LIB. Log:\n{log}")
    return EngineLoadError(f"TensorRT {version} cannot deserialise {plan}; last log lines:\n{log}\nplans load only "
                           "on the TensorRT version and GPU they were built with: rebuild with fornet-build")


class _Buffer:
    """A device allocation and a pinned host array of one I/O tensor, sized for the largest batch."""

    def __init__(self, cuda: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.host: np.ndarray = cuda.pagelocked_empty(int(np.prod(shape)), dtype)
        self.device = cuda.mem_alloc(max(1, self.host.nbytes))

    def host_view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first ``prod(shape)`` pinned elements as an array of ``shape``."""
        return self.host[: int(np.prod(shape))].reshape(shape)


class TensorRTBackend(Backend):
    """Run a TensorRT plan.

    Args:
        plan: the ``.plan`` file (its ``<plan>.json`` sidecar is read when present).
        device: the GPU: ``"cuda:N"`` (``"auto"``, ``"cuda"``, ``N``: as :func:`fornet.options.parse_device`).
        plugin: the TopKGate plugin library (default: searched, see :mod:`fornet.runtime.tensorrt.plugins`).
        cuda_graph: replay ``execute_async_v3`` as a CUDA graph (recaptured after every batch change).
    """

    NAME = "tensorrt"
    SUFFIXES = (".plan", ".engine")
    LIBRARIES = (("tensorrt", "JetPack: apt install python3-libnvinfer; elsewhere pip install tensorrt"),
                 ("pycuda", "pip install pycuda"))
    DEVICES = frozenset({"cuda"})
    OPTIONS = frozenset({"plugin", "cuda_graph"})
    GPU_PREPOST = True

    def __init__(self, plan: str | os.PathLike[str], device: int | str = "cuda:0",
                 plugin: str | os.PathLike[str] | None = None, cuda_graph: bool = False) -> None:
        self.device_index = cuda_index(parse_device(device))
        super().__init__(f"TensorRTBackend({Path(plan).name})", f"cuda:{self.device_index}")
        self.path = Path(plan)
        self.plugin = plugin
        self.cuda_graph = cuda_graph
        self._cuda: CudaContext | None = None
        self._stream: Any = None
        self._runtime: tuple[trt.ILogger, trt.Runtime] | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._specs: dict[str, tuple[bool, TensorSpec]] = {}
        self._buffers: dict[str, _Buffer] = {}
        self._max_batch = 1
        self._batch: int | None = None
        self._graph: CudaGraph | None = None  # captured for the shapes currently set

    @classmethod
    def sidecar_path(cls, path: Path) -> Path:
        """A plan is described by the sidecar of the ONNX file it was built from."""
        return onnx_sidecar_for_plan(path)

    @classmethod
    def check_sidecar(cls, sidecar: ModelSidecar, sidecar_path: Path, path: Path) -> None:
        """The plan's own ``<plan>.json`` must name the ONNX file the sidecar describes."""
        check_plan_binding(sidecar, sidecar_path, path)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TensorRTBackend:
        """The backend of a spec (device, plugin, CUDA graph)."""
        return cls(spec.path, device=spec.device, plugin=spec.plugin, cuda_graph=spec.cuda_graph)

    # -- loading ---------------------------------------------------------------------------
    def _activate_impl(self) -> None:
        if not self.path.is_file():
            raise BackendError(f"TensorRT plan not found: {self.path}; build one with fornet-build or fix the path")
        metadata = EngineMetadata.load_if_present(self.path)
        version = require_tensorrt()
        check_engine_compatibility(self.path, metadata, version, None)
        cuda = CudaContext(self.device_index)
        self._cuda = cuda
        try:
            check_engine_compatibility(self.path, metadata, version, cuda.compute_capability)
            with cuda:
                self._load(metadata, version)
        except BaseException:
            self._release_after_error()
            raise

    def _load_plugin(self, metadata: EngineMetadata | None) -> Exception | None:
        """Load the plugin library when the plan needs it (the one it was built with); return a deferred error
        when unsure."""
        if metadata is not None and metadata.plugin is None and self.plugin is None:
            return None
        if metadata is not None and metadata.plugin is not None and metadata.plugin.serialized_in_plan \
                and self.plugin is None:
            return None  # a version-compatible plan carries the library; its lean runtime loads it
        try:
            library = find_plugin_library(self.plugin)
            check_plugin_library(self.path, metadata, library)
            load_plugin_library(library)
        except PluginLibraryError as exc:
            if metadata is not None:
                raise  # the sidecar says the plan holds the plugin: a hard error up front
            return exc  # a plan without a sidecar may not need it: raised only if loading fails
        return None

    def _load(self, metadata: EngineMetadata | None, version: str) -> None:
        import tensorrt as trt

        assert self._cuda is not None
        plugin_error = self._load_plugin(metadata)
        tail = LogTail()
        logger = make_logger(tail)
        trt.init_libnvinfer_plugins(logger, "")  # TensorRT's own plugins, should the plan use any
        runtime = trt.Runtime(logger)
        runtime.engine_host_code_allowed = allows_host_code(metadata)
        self._runtime = (logger, runtime)  # both must outlive the engine
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise classify_load_failure(self.path, version, tail.text(), plugin_error)
        context = engine.create_execution_context()
        if context is None:
            raise EngineLoadError(f"TensorRT could not create an execution context for {self.path} (out of GPU "
                                  "memory?); free GPU memory or use a smaller batch profile")
        self._engine, self._context = engine, context
        self._stream = self._cuda.driver.Stream()
        self._read_specs(engine)
        self._allocate(engine, context)

    def _read_specs(self, engine: trt.ICudaEngine) -> None:
        import tensorrt as trt

        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            dims = engine.get_tensor_shape(name)
            type_name = engine.get_tensor_dtype(name).name
            if type_name not in _NUMPY_TYPES:
                raise EngineLoadError(f"{self.path}: tensor {name!r} has TensorRT type {type_name}, which this "
                                      "backend cannot map to numpy; build the plan from a fornet-export ONNX")
            shape = tuple(None if dims[i] < 0 else int(dims[i]) for i in range(len(dims)))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            self._specs[name] = (is_input, TensorSpec(shape, np.dtype(_NUMPY_TYPES[type_name])))

    def _allocate(self, engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
        """Device and pinned host buffers for the largest batch of profile 0; bind the addresses."""
        assert self._cuda is not None
        for name, (is_input, spec) in self._specs.items():
            if is_input and spec.shape:
                first = spec.shape[0]
                largest = int(engine.get_tensor_profile_shape(name, 0)[2][0]) if first is None else first
                self._max_batch = max(self._max_batch, largest)
        self._set_shapes(self._max_batch, context)
        for name in self._specs:
            dims = context.get_tensor_shape(name)
            shape = tuple(int(dims[i]) for i in range(len(dims)))
            buffer = _Buffer(self._cuda.driver, shape, self._specs[name][1].dtype)
            self._buffers[name] = buffer
            if not context.set_tensor_address(name, int(buffer.device)):
                raise EngineLoadError(f"TensorRT rejected the buffer address of {name!r} in {self.path}")

    def _set_shapes(self, batch: int, context: trt.IExecutionContext) -> None:
        for name, (is_input, spec) in self._specs.items():
            if is_input and spec.shape and spec.shape[0] is None:
                shape = (batch, *(int(d) for d in spec.shape[1:] if d is not None))
                if not context.set_input_shape(name, shape):
                    raise BackendInputError(f"{self.name}: batch {batch} is outside the plan's optimisation profile "
                                            f"(max {self._max_batch}); rebuild with a larger --max-batch")
        self._batch = batch
        self._drop_graph()  # captured for the previous shapes: recaptured after one plain execution

    def _drop_graph(self) -> None:
        if self._graph is not None:
            self._graph.destroy()
            self._graph = None

    def _deactivate_impl(self) -> None:
        self._release()

    def _release(self) -> None:
        """Free graphs, buffers, stream, context and engine with the CUDA context current, then release it.

        The CUDA context is released after its ``with`` block has popped it (see
        :meth:`CudaContext.release`), and even when freeing fails.
        """
        cuda, self._cuda = self._cuda, None
        if cuda is not None:
            cuda.close(self._free_device_objects)

    def _release_after_error(self) -> None:
        """:meth:`_release` while an activation error propagates: a cleanup failure is logged, not raised."""
        try:
            self._release()
        except Exception as exc:  # the activation error is the one the caller must see
            _log.warning("%s: cleaning up after a failed load also failed: %s", self.name, exc)

    def _free_device_objects(self) -> None:
        """Drop every object that lives in the CUDA context (called with it current)."""
        try:
            if self._stream is not None:
                self._stream.synchronize()
            self._drop_graph()
            for buffer in self._buffers.values():
                buffer.device.free()
        finally:
            self._buffers, self._specs = {}, {}
            self._context = self._engine = self._stream = None
            self._runtime = self._batch = None

    # -- I/O description -------------------------------------------------------------------
    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        return {name: spec for name, (is_input, spec) in self._specs.items() if is_input}

    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        return {name: spec for name, (is_input, spec) in self._specs.items() if not is_input}

    @property
    def cuda_context(self) -> CudaContext:
        """The GPU's primary context (enter it around any direct use of the buffers or stream)."""
        self._require_active()
        assert self._cuda is not None
        return self._cuda

    @property
    def stream(self) -> Any:
        """The pycuda stream every copy and execution goes to."""
        self._require_active()
        return self._stream

    @property
    def max_batch(self) -> int:
        """The largest batch the buffers (and the plan's profile) take."""
        return self._max_batch

    def device_pointer(self, name: str) -> int:
        """Device address of I/O tensor ``name`` (laid out for the current batch)."""
        self._require_active()
        return int(self._buffers[name].device)

    # -- running ---------------------------------------------------------------------------
    def set_batch(self, batch: int) -> None:
        """Set the batch of dynamic-batch inputs (a no-op when unchanged). Call in the CUDA context."""
        if not 1 <= batch <= self._max_batch:
            raise BackendInputError(f"{self.name}: batch {batch} is outside 1..{self._max_batch}, the plan's "
                                    "batch range; split the frames or rebuild with a larger --max-batch")
        if batch != self._batch:
            assert self._context is not None
            self._set_shapes(batch, self._context)

    def output_shape(self, name: str) -> tuple[int, ...]:
        """Shape of output ``name`` for the current batch."""
        assert self._context is not None
        dims = self._context.get_tensor_shape(name)
        return tuple(int(dims[i]) for i in range(len(dims)))

    def enqueue(self) -> None:
        """Enqueue one execution on :attr:`stream` (replaying the CUDA graph when enabled).

        With CUDA graphs, the first execution after any input-shape change runs uncaptured and
        the stream is synchronised before the graph is captured (TensorRT does shape-dependent
        set-up on that execution; trtexec's ``sampleInference.cpp`` does the same): a graph is
        only ever captured, and replayed, for the shapes that are set when it was captured.
        """
        assert self._context is not None and self._batch is not None
        if not self.cuda_graph:
            self._execute()
            return
        if self._graph is None:
            self._execute()  # this call's work, uncaptured, right after the shape change
            self._stream.synchronize()
            self._graph = CudaGraph(int(self._stream.handle), self._execute)
            return
        self._graph.launch()

    def _execute(self) -> None:
        assert self._context is not None
        if not self._context.execute_async_v3(int(self._stream.handle)):
            raise TensorRTError(f"{self.name}: execute_async_v3 failed (see TensorRT's log above); check the inputs")

    def _upload(self, feed: dict[str, np.ndarray]) -> None:
        cuda = self.cuda_context.driver
        batch = {int(array.shape[0]) for name, array in feed.items() if self._specs[name][1].shape[:1] == (None,)}
        self.set_batch(batch.pop() if batch else self._max_batch)
        for name, array in feed.items():
            host = self._buffers[name].host_view(array.shape)
            np.copyto(host, array)
            cuda.memcpy_htod_async(self._buffers[name].device, host, self._stream)

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self.cuda_context.driver
        with self.cuda_context:
            self._upload(feed)
            self.enqueue()
            outputs = {}
            for name in self._output_specs_impl():
                host = self._buffers[name].host_view(self.output_shape(name))
                cuda.memcpy_dtoh_async(host, self._buffers[name].device, self._stream)
                outputs[name] = host
            self._stream.synchronize()
            return {name: host.copy() for name, host in outputs.items()}

    def staged_compute(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """A callable that executes the plan on ``feed``, uploaded once now, and waits (no copies)."""
        self._require_active()
        self._check_feed(feed)
        with self.cuda_context:
            self._upload(dict(feed))
            self._stream.synchronize()

        def compute() -> None:
            with self.cuda_context:
                self.enqueue()
                self._stream.synchronize()

        return compute
