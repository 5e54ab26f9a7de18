"""The one fake of TensorRT's Python API that every test uses (TensorRT cannot be installed here).

It stands in for the *library*, so that fornet's own code runs on any machine: the backend's
load/run state machine, the builder's configuration, plan inspection and plugin loading. A test
describes the TensorRT it wants in a :class:`TrtWorld` (version, the plan's I/O tensors, what
fails) and reads back what TensorRT saw there; :func:`install_fake_tensorrt` makes
``import tensorrt`` return it. Each rule of the real API that the tests rely on is encoded here,
with where it comes from:

* Bindings versus stubs: real bindings have ``__version__`` and ``Builder``; ``pip install
  tensorrt-stubs`` leaves an empty namespace package (:func:`make_stub_only_tensorrt`).
* ``ILogger.Severity`` is INTERNAL_ERROR 0 ... VERBOSE 4 (``NvInferRuntimeBase.h``); a Python
  logger subclass calls ``ILogger.__init__``. Failing calls return ``None``/``False`` after logging why.
* TensorRT 11 removed the precision builder flags (FP16, INT8, ...) and implicit INT8 calibration
  (``IInt8EntropyCalibrator2``, ``IBuilderConfig.set_calibration_profile``);
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is 1 in 10.x (after the deprecated
  EXPLICIT_BATCH) and 0 in 11.x.
* ``IRuntime.engine_host_code_allowed`` is False unless set (``NvInferRuntime.h``).
* A dynamic dimension reads -1 on the engine and on an execution context until
  ``set_input_shape`` sets it, which refuses (returns False) a shape outside the optimisation
  profile; every dynamic input must be set before ``execute_async_v3``.
* After ``set_input_shape`` the first ``execute_async_v3`` must not be captured into a CUDA graph
  and the stream is synchronised before capture; a graph replays the shapes it was captured with
  (trtexec ``sampleInference.cpp``; :class:`FakeCudaGraph`).
* ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` returns JSON text.
* ``IPluginRegistry.get_creator(name, version, namespace)`` finds a creator only once it is
  registered: a library with static registration registers when it is loaded, one without
  through ``IPluginRegistry.load_library``.
* ``IBuilderConfig.set_timing_cache(cache, ignore_mismatch=False)`` returns False for a cache
  from another device; ``IOnnxParser.parse`` returns False and keeps its errors (``num_errors``,
  ``get_error``).
"""

from __future__ import annotations

import enum
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import pytest

from tests.helpers.fake_cuda import CudaWorld, FakeStream

#: What the fake builder serialises.
PLAN_BYTES = b"fake-plan\x00\x01"

_DATA_TYPES = ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64"]
#: The datatype word of each type in TensorRT's format descriptions ("Row major linear FP32").
_FORMAT_WORDS = {"FLOAT": "FP32", "HALF": "FP16", "INT8": "Int8", "INT32": "Int32", "BOOL": "Bool",
                 "UINT8": "UInt8", "FP8": "FP8", "BF16": "BF16", "INT64": "Int64"}


@dataclass(frozen=True)
class FakeIOTensor:
    """One I/O tensor of the fake plan; -1 marks a dynamic dimension, ``profile`` is (min, opt, max)."""

    name: str
    mode: str  # "INPUT" or "OUTPUT"
    shape: tuple[int, ...]
    dtype: str  # a DataType name
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


#: The plan of the backend tests: input ``image`` N x 3 x 4 x 4 float (N in 1..4), output ``out`` N x 4 x 4 uint8.
SMALL_PLAN = (
    FakeIOTensor("image", "INPUT", (-1, 3, 4, 4), "FLOAT", ((1, 3, 4, 4), (1, 3, 4, 4), (4, 3, 4, 4))),
    FakeIOTensor("out", "OUTPUT", (-1, 4, 4), "UINT8"),
)


class FakeRegistry:
    """``IPluginRegistry``: answers ``get_creator`` once the plugin is registered."""

    def __init__(self, registered: bool = False, registers_on_load_library: bool = False) -> None:
        self.registered = registered
        self.registers_on_load_library = registers_on_load_library
        self.loaded: list[str] = []
        self.queries: list[tuple[str, str, str]] = []

    def get_creator(self, name: str, version: str, namespace: str = "") -> object | None:
        self.queries.append((name, version, namespace))
        return object() if self.registered else None

    def load_library(self, path: str) -> object:
        self.loaded.append(path)
        self.registered = self.registered or self.registers_on_load_library
        return object()


@dataclass
class TrtWorld:
    """The TensorRT one test runs against: how it behaves, and what it saw."""

    version: str = "10.3.0.26"
    #: The fake pycuda whose streams the plan executes on (run-side tests only).
    cuda: CudaWorld | None = None
    plan: tuple[FakeIOTensor, ...] = SMALL_PLAN
    #: What the engine inspector reports (``get_engine_information``).
    engine_information: dict[str, Any] = field(default_factory=lambda: {"Layers": []})
    deserialize_ok: bool = True
    parse_ok: bool = True
    build_ok: bool = True
    #: What TensorRT logs (as an ERROR) when deserialising or building fails.
    log_on_failure: str = ""
    timing_cache_matches: bool = True
    registry: FakeRegistry = field(default_factory=FakeRegistry)
    # -- what TensorRT saw
    host_code_allowed_at_deserialize: bool | None = None
    executions: list[tuple[int, bool]] = field(default_factory=list)  # (batch, captured)
    capturing: FakeStream | None = None
    network_flags: int | None = None
    config: FakeConfig | None = None
    parsed: onnx.ModelProto | None = None

    @property
    def major(self) -> int:
        """The major version (10 or 11 decides which API exists)."""
        return int(self.version.split(".")[0])

    def tensor(self, name: str) -> FakeIOTensor:
        """The plan's I/O tensor ``name``."""
        return next(t for t in self.plan if t.name == name)


class FakeILogger:
    """``tensorrt.ILogger`` with its severities (the base class fornet's logger subclasses)."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass


class FakeDims:
    """``tensorrt.Dims``: a sized, indexable shape."""

    def __init__(self, shape: list[int] | tuple[int, ...]) -> None:
        self._shape = list(shape)

    def __len__(self) -> int:
        return len(self._shape)

    def __getitem__(self, index: int) -> int:
        return self._shape[index]

    def as_list(self) -> list[int]:
        return list(self._shape)


# ------------------------------------------------------------------ run side

class FakeExecutionContext:
    """``IExecutionContext`` of the world's plan."""

    def __init__(self, world: TrtWorld) -> None:
        self.world = world
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.shape_changed = True  # nothing executed since the last set_input_shape
        self.addresses: dict[str, int] = {}

    @property
    def batch(self) -> int | None:
        """The batch the input shapes set (None before any is set)."""
        return next((shape[0] for shape in self.input_shapes.values()), None)

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        tensor = self.world.tensor(name)
        low, _, high = tensor.profile or (tensor.shape, tensor.shape, tensor.shape)
        if len(shape) != len(tensor.shape):
            return False
        if not all(lo <= d <= hi for lo, d, hi in zip(low, shape, high, strict=True)):
            return False
        self.input_shapes[name] = tuple(shape)
        self.shape_changed = True
        return True

    def get_tensor_shape(self, name: str) -> FakeDims:
        shape = self.world.tensor(name).shape
        batch = self.batch
        return FakeDims([batch if d < 0 and batch is not None else d for d in shape])

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        world = self.world
        unset = [t.name for t in world.plan if t.mode == "INPUT" and -1 in t.shape and t.name not in self.input_shapes]
        assert not unset, f"executed before set_input_shape of {unset}"
        assert world.cuda is not None, "the fake plan executes on a fake pycuda: TrtWorld(cuda=...)"
        captured = world.capturing is not None
        if captured:
            assert not self.shape_changed, (
                "captured the first execution after set_input_shape (trtexec enqueues once uncaptured first)")
            assert world.capturing is not None and not world.capturing.pending, (
                "captured without synchronising the stream first")
        self.shape_changed = False
        assert self.batch is not None
        world.executions.append((self.batch, captured))
        if not captured:
            world.cuda.streams[stream_handle].pending = True
        return True


class FakeEngineInspector:
    """``IEngineInspector``."""

    def __init__(self, world: TrtWorld, json_format: Any) -> None:
        self.world = world
        self.json_format = json_format

    def get_engine_information(self, fmt: Any) -> str:
        assert fmt == self.json_format, "fornet reads the layer information as JSON"
        return json.dumps(self.world.engine_information)


class FakeEngine:
    """``ICudaEngine`` of the world's plan."""

    def __init__(self, world: TrtWorld, trt: types.ModuleType) -> None:
        self.world = world
        self._trt = trt
        self.num_io_tensors = len(world.plan)

    def get_tensor_name(self, index: int) -> str:
        return self.world.plan[index].name

    def get_tensor_shape(self, name: str) -> FakeDims:
        return FakeDims(self.world.tensor(name).shape)

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt.DataType[self.world.tensor(name).dtype]

    def get_tensor_mode(self, name: str) -> Any:
        return self._trt.TensorIOMode[self.world.tensor(name).mode]

    def get_tensor_format_desc(self, name: str) -> str:
        return f"Row major linear {_FORMAT_WORDS[self.world.tensor(name).dtype]}"

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[FakeDims, FakeDims, FakeDims]:
        shapes = self.world.tensor(name).profile
        assert profile == 0 and shapes is not None, f"{name!r} has no optimisation profile {profile}"
        low, opt, high = shapes
        return FakeDims(low), FakeDims(opt), FakeDims(high)

    def create_execution_context(self) -> FakeExecutionContext:
        return FakeExecutionContext(self.world)

    def create_engine_inspector(self) -> FakeEngineInspector:
        return FakeEngineInspector(self.world, self._trt.LayerInformationFormat.JSON)


class FakeCudaGraph:
    """``fornet.runtime.cuda.graph.CudaGraph`` without libcuda: captures by calling ``enqueue`` in capture mode."""

    def __init__(self, world: TrtWorld, stream: FakeStream, context: FakeExecutionContext, enqueue: Any) -> None:
        self.world = world
        self.context = context
        world.capturing = stream
        try:
            enqueue()
        finally:
            world.capturing = None
        self.batch = context.batch
        self.destroyed = False

    def launch(self) -> None:
        assert not self.destroyed, "launched a destroyed graph"
        assert self.context.batch == self.batch, "replayed a graph captured for other input shapes"
        assert not self.context.shape_changed, "replayed a graph right after set_input_shape"
        assert self.batch is not None
        self.world.executions.append((self.batch, True))

    def destroy(self) -> None:
        self.destroyed = True


# ------------------------------------------------------------------ build side

class FakeITensor:
    """A network input or output (``ITensor``)."""

    def __init__(self, name: str, shape: list[int]) -> None:
        self.name = name
        self.shape = FakeDims(shape)
        self.dtype = types.SimpleNamespace(name="FLOAT")


class FakeNetwork:
    """``INetworkDefinition``: what the parser defined."""

    def __init__(self) -> None:
        self.inputs: list[FakeITensor] = []
        self.outputs: list[FakeITensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> FakeITensor:
        return self.inputs[index]

    def get_output(self, index: int) -> FakeITensor:
        return self.outputs[index]


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+timings"


class FakeProfile:
    """``IOptimizationProfile``."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, name: str, low: FakeDims, opt: FakeDims, high: FakeDims) -> None:
        self.shapes[name] = (low.as_list(), opt.as_list(), high.as_list())


class FakeConfig:
    """``IBuilderConfig`` of TensorRT 11 (no implicit INT8)."""

    def __init__(self, world: TrtWorld) -> None:
        self.world = world
        self.flags: list[Any] = []
        self.pool_limits: dict[Any, int] = {}
        self.profiles: list[FakeProfile] = []
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = "NONE"
        self.profiling_verbosity = "LAYER_NAMES_ONLY"
        self.timing_cache: FakeTimingCache | None = None
        self.plugins_to_serialize: list[str] = []

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.pool_limits[pool] = size

    def set_flag(self, flag: Any) -> None:
        self.flags.append(flag)

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        return FakeTimingCache(bytes(data))

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False
        self.timing_cache = cache
        return self.world.timing_cache_matches

    def get_timing_cache(self) -> FakeTimingCache:
        assert self.timing_cache is not None
        return self.timing_cache


class FakeConfig10(FakeConfig):
    """``IBuilderConfig`` of TensorRT 10.x, with implicit INT8 calibration."""

    def __init__(self, world: TrtWorld) -> None:
        super().__init__(world)
        self.int8_calibrator: Any = None
        self.calibration_profile: FakeProfile | None = None

    def set_calibration_profile(self, profile: FakeProfile) -> bool:
        self.calibration_profile = profile
        return True


class FakeParserError:
    """``IParserError`` of the unsupported node the fake parser reports."""

    def desc(self) -> str:
        return "No importer registered for op: Frobnicate"

    def node(self) -> int:
        return 7

    def node_name(self) -> str:
        return "/head/frob"

    def node_operator(self) -> str:
        return "Frobnicate"


# ------------------------------------------------------------------ the module

def make_fake_tensorrt(world: TrtWorld) -> types.ModuleType:
    """A ``tensorrt`` module backed by ``world``: the run-side, build-side and plugin API fornet uses."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = world.version
    trt.TensorIOMode = enum.Enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    trt.DataType = enum.Enum("DataType", _DATA_TYPES)
    trt.LayerInformationFormat = enum.Enum("LayerInformationFormat", ["ONELINE", "JSON"])
    trt.ILogger = FakeILogger
    trt.Dims = FakeDims
    trt.init_libnvinfer_plugins = lambda logger, namespace: True
    trt.get_plugin_registry = lambda: world.registry

    class Runtime:
        def __init__(self, logger: FakeILogger) -> None:
            self.logger = logger
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
            world.host_code_allowed_at_deserialize = self.engine_host_code_allowed
            if not world.deserialize_ok:
                self.logger.log(FakeILogger.Severity.ERROR, world.log_on_failure)
                return None
            return FakeEngine(world, trt)

    class OnnxParser:
        def __init__(self, network: FakeNetwork, logger: FakeILogger) -> None:
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            return self._define(onnx.load(path))

        def parse(self, data: bytes, path: str) -> bool:
            assert Path(path).is_file()  # external weights resolve next to the original file
            return self._define(onnx.load_from_string(data))

        def _define(self, model: onnx.ModelProto) -> bool:
            world.parsed = model
            for value in model.graph.input:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                self.network.inputs.append(FakeITensor(value.name, dims))
            self.network.outputs = [FakeITensor(value.name, [-1, 3, 8, 16]) for value in model.graph.output]
            if not world.parse_ok:
                self.num_errors = 1
            return world.parse_ok

        def get_error(self, index: int) -> FakeParserError:
            return FakeParserError()

        def get_used_vc_plugin_libraries(self) -> list[str]:
            return []  # TensorRT's own plugins the graph would need: none here

    class Builder:
        def __init__(self, logger: FakeILogger) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> FakeNetwork:
            world.network_flags = flags
            return FakeNetwork()

        def create_builder_config(self) -> FakeConfig:
            world.config = FakeConfig10(world) if world.major == 10 else FakeConfig(world)
            return world.config

        def create_optimization_profile(self) -> FakeProfile:
            return FakeProfile()

        def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
            if not world.build_ok:
                self.logger.log(FakeILogger.Severity.ERROR, world.log_on_failure)
                return None
            return PLAN_BYTES

    legacy_int8 = world.major == 10
    trt.Runtime = Runtime
    trt.OnnxParser = OnnxParser
    trt.Builder = Builder
    precision_flags = ["FP16", "INT8"] if legacy_int8 else []
    trt.BuilderFlag = enum.Enum("BuilderFlag", ["VERSION_COMPATIBLE", "TF32", *precision_flags])
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     {"STRONGLY_TYPED": 1 if legacy_int8 else 0})
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
    trt.ProfilingVerbosity = enum.Enum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "DETAILED"])
    trt.HardwareCompatibilityLevel = enum.Enum("HardwareCompatibilityLevel", ["NONE", "AMPERE_PLUS"])
    if legacy_int8:
        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


def make_stub_only_tensorrt() -> types.ModuleType:
    """What ``pip install tensorrt-stubs`` leaves importable as ``tensorrt``: an empty namespace package."""
    stubs = types.ModuleType("tensorrt")
    stubs.__path__ = ["/site-packages/tensorrt"]
    return stubs


def install_fake_tensorrt(monkeypatch: pytest.MonkeyPatch, world: TrtWorld | None = None) -> types.ModuleType:
    """Make ``import tensorrt`` return the fake of ``world`` (a default one if None) for one test."""
    trt = make_fake_tensorrt(world if world is not None else TrtWorld())
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt
