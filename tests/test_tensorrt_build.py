"""build_engine: the missing-TensorRT/GPU errors, and the build flow against a recording fake of
the TensorRT Python API (the names it offers are the ones mypy checks against the real stubs in
test_tensorrt_static.py)."""

from __future__ import annotations

import enum
import sys
import types
from pathlib import Path
from typing import Any

import onnx
import pytest

from fornet.export.tensorrt import build as tensorrt_build
from fornet.export.tensorrt.build import EngineBuildError, OnnxParseError, build_engine, tensorrt_available
from fornet.export.tensorrt.calibration_cache import CalibrationCacheError
from fornet.export.tensorrt.legacy_int8 import LegacyInt8UnavailableError
from fornet.export.tensorrt.options import BuildOptions, BuildOptionsError
from fornet.hashing import sha256_file
from fornet.runtime.tensorrt.env import CudaDevice, NoGpuError, TensorRTUnavailableError
from fornet.runtime.tensorrt.plan_metadata import (
    BuildSettings,
    CalibrationCacheInfo,
    EngineMetadata,
    GpuInfo,
    ShapeProfile,
)
from tests.fake_cuda import FakeILogger
from tests.test_tensorrt_onnx import save_model

PLAN_BYTES = b"fake-plan\x00\x01"


class Recorder:
    """What the fake saw, for assertions."""

    def __init__(self) -> None:
        self.network_flags: int | None = None
        self.config: FakeConfig | None = None
        self.parse_ok = True
        self.build_ok = True
        self.timing_cache_matches = True
        self.parsed: onnx.ModelProto | None = None


class FakeDims:
    def __init__(self, shape: list[int]) -> None:
        self._shape = list(shape)

    def __len__(self) -> int:
        return len(self._shape)

    def __getitem__(self, index: int) -> int:
        return self._shape[index]


class FakeTensor:
    def __init__(self, name: str, shape: list[int]) -> None:
        self.name = name
        self.shape = FakeDims(shape)
        self.dtype = types.SimpleNamespace(name="FLOAT")


class FakeNetwork:
    def __init__(self) -> None:
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> FakeTensor:
        return self.inputs[index]

    def get_output(self, index: int) -> FakeTensor:
        return self.outputs[index]


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+timings"


class FakeConfig:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.flags: list[Any] = []
        self.pool_limits: dict[Any, int] = {}
        self.profiles: list[FakeProfile] = []
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = "NONE"
        self.profiling_verbosity = "LAYER_NAMES_ONLY"
        self.timing_cache: FakeTimingCache | None = None
        self.int8_calibrator: Any = None
        self.plugins_to_serialize: list[str] = []
        self.calibration_profile: FakeProfile | None = None

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
        return self.recorder.timing_cache_matches

    def get_timing_cache(self) -> FakeTimingCache:
        assert self.timing_cache is not None
        return self.timing_cache

    def set_calibration_profile(self, profile: FakeProfile) -> bool:  # TensorRT 10.x only (removed in 11)
        self.calibration_profile = profile
        return True


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, name: str, low: FakeDims, opt: FakeDims, high: FakeDims) -> None:
        self.shapes[name] = (list(low._shape), list(opt._shape), list(high._shape))


def make_fake_tensorrt(recorder: Recorder, *, version: str = "10.3.0.26", legacy_int8: bool = True) -> Any:
    """A module with the subset of the TensorRT API that fornet.export uses."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    ILogger = FakeILogger

    class ParserError:
        def desc(self) -> str:
            return "No importer registered for op: Frobnicate"

        def node(self) -> int:
            return 7

        def node_name(self) -> str:
            return "/head/frob"

        def node_operator(self) -> str:
            return "Frobnicate"

    class OnnxParser:
        def __init__(self, network: FakeNetwork, logger: ILogger) -> None:
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            return self._define(onnx.load(path))

        def parse(self, data: bytes, path: str) -> bool:
            assert Path(path).is_file()  # external weights resolve next to the original file
            return self._define(onnx.load_from_string(data))

        def _define(self, model: onnx.ModelProto) -> bool:
            recorder.parsed = model
            graph = model.graph
            for value in graph.input:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                self.network.inputs.append(FakeTensor(value.name, dims))
            self.network.outputs = [FakeTensor(value.name, [-1, 3, 8, 16]) for value in graph.output]
            if not recorder.parse_ok:
                self.num_errors = 1
            return recorder.parse_ok

        def get_error(self, index: int) -> ParserError:
            return ParserError()

        def get_used_vc_plugin_libraries(self) -> list[str]:
            return []  # TensorRT's own plugins the graph would need: none here

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> FakeNetwork:
            recorder.network_flags = flags
            return FakeNetwork()

        def create_builder_config(self) -> FakeConfig:
            recorder.config = FakeConfig(recorder)
            return recorder.config

        def create_optimization_profile(self) -> FakeProfile:
            return FakeProfile()

        def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
            self.logger.log(ILogger.Severity.ERROR, "out of workspace memory in tactic X")
            return PLAN_BYTES if recorder.build_ok else None

    flags = ["VERSION_COMPATIBLE", "TF32"] + (["FP16", "INT8"] if legacy_int8 else [])
    trt.ILogger = ILogger
    trt.OnnxParser = OnnxParser
    trt.Builder = Builder
    trt.Dims = FakeDims
    trt.BuilderFlag = enum.Enum("BuilderFlag", flags)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1 if version.startswith("10.") else 0})
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
    trt.ProfilingVerbosity = enum.Enum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "DETAILED"])
    trt.HardwareCompatibilityLevel = enum.Enum("HardwareCompatibilityLevel", ["NONE", "AMPERE_PLUS"])
    trt.init_libnvinfer_plugins = lambda logger, namespace: True
    if legacy_int8:
        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> Any:
    trt = make_fake_tensorrt(recorder)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_build, "cuda_device", lambda: CudaDevice("Orin (fake)", (8, 7)))
    return trt


class PluginStub:
    """Stand-in for load_plugin_library (its own tests are in test_plugin_loader.py)."""

    def __init__(self, library: Path) -> None:
        self.library = library
        self.calls: list[Path | None] = []

    def __call__(self, path: Path | None = None) -> Path:
        self.calls.append(path)
        return self.library


@pytest.fixture
def plugin_lib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginStub:
    library = tmp_path / "libfornet_plugins.so"
    library.write_bytes(b"\x7fELF fake")
    stub = PluginStub(library)
    monkeypatch.setattr("fornet.runtime.tensorrt.plugins.load_plugin_library", stub)
    return stub


def test_no_tensorrt_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    assert tensorrt_available() is False
    with pytest.raises(TensorRTUnavailableError, match=r"python3-libnvinfer.*pip install tensorrt"):
        build_engine(save_model(tmp_path / "m.onnx"))


def test_type_stubs_alone_do_not_count_as_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_only = types.ModuleType("tensorrt")  # what `pip install tensorrt-stubs` leaves importable
    stub_only.__path__ = ["/site-packages/tensorrt"]
    monkeypatch.setitem(sys.modules, "tensorrt", stub_only)
    assert tensorrt_available() is False
    with pytest.raises(TensorRTUnavailableError, match=r"no bindings"):
        tensorrt_build.require_tensorrt()


def test_no_gpu_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(recorder))

    def no_gpu() -> CudaDevice:
        raise NoGpuError("no CUDA driver; run this on the Jetson")

    monkeypatch.setattr(tensorrt_build, "cuda_device", no_gpu)
    with pytest.raises(NoGpuError, match=r"Jetson"):
        build_engine(save_model(tmp_path / "m.onnx"))
    assert recorder.network_flags is None  # failed before touching the builder


def test_strongly_typed_build_writes_plan_cache_and_sidecar(tmp_path: Path, fake_trt: Any, recorder: Recorder,
                                                            plugin_lib: PluginStub) -> None:
    onnx_path = save_model(tmp_path / "fornet_fp16.onnx", gate=True, kind="fp16")
    cache = tmp_path / "orin.cache"
    cache.write_bytes(b"old")
    plan = build_engine(onnx_path, options=BuildOptions(workspace_mib=512, opt_level=5, timing_cache=cache,
                                                       max_batch=2, hardware_compat="ampere+",
                                                       version_compatible=True))
    assert plan == tmp_path / "fornet_fp16.plan" and plan.read_bytes() == PLAN_BYTES
    assert recorder.network_flags == 1 << 1  # STRONGLY_TYPED is 1 in the 10.x enum
    config = recorder.config
    assert config is not None
    assert config.flags == [fake_trt.BuilderFlag.VERSION_COMPATIBLE]  # no precision flag
    assert config.pool_limits == {fake_trt.MemoryPoolType.WORKSPACE: 512 << 20}
    assert config.builder_optimization_level == 5
    assert config.hardware_compatibility_level == fake_trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert config.profiling_verbosity == fake_trt.ProfilingVerbosity.DETAILED
    assert config.profiles[0].shapes == {
        "image": ([1, 3, 8, 16], [1, 3, 8, 16], [2, 3, 8, 16]),
        "score": ([1, 1, 8, 16], [1, 1, 8, 16], [2, 1, 8, 16]),
    }
    assert cache.read_bytes() == b"old+timings"
    assert plugin_lib.calls == [None]
    # a version-compatible plan runs in its embedded lean runtime: the plugin library travels in the plan
    assert config.plugins_to_serialize == [str(plugin_lib.library)]
    record = EngineMetadata.load(tmp_path / "fornet_fp16.plan.json")
    assert record.plugin is not None and record.plugin.serialized_in_plan is True
    assert record.tensorrt_version == "10.3.0.26"
    assert record.gpu == GpuInfo("Orin (fake)", "8.7")
    assert record.built_precision == "fp16" and record.strongly_typed is True
    assert record.plugin.library == "libfornet_plugins.so" and len(record.plugin.sha256) == 64
    assert record.source_onnx.file == "fornet_fp16.onnx"
    assert record.inputs[0].profile == ShapeProfile((1, 3, 8, 16), (1, 3, 8, 16), (2, 3, 8, 16))
    assert record.build_options == BuildSettings(workspace_mib=512, opt_level=5, timing_cache=str(cache),
                                                 max_batch=2, version_compatible=True, hardware_compat="ampere+")
    assert record.fornet_build_command.startswith("fornet-build --onnx")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_gate_function_is_dropped_before_parsing(tmp_path: Path, fake_trt: Any, recorder: Recorder,
                                                 plugin_lib: PluginStub) -> None:
    # TensorRT < 10.7 would expand the function (TopK, k <= 3840) instead of using the plugin
    onnx_path = save_model(tmp_path / "fornet.onnx", gate=True, function=True)
    build_engine(onnx_path)
    assert recorder.parsed is not None and not recorder.parsed.functions
    assert [n.op_type for n in recorder.parsed.graph.node][-1] == "TopKGate"
    assert onnx.load(str(onnx_path)).functions  # the file itself is untouched


def test_native_gate_graph_needs_no_plugin(tmp_path: Path, fake_trt: Any, plugin_lib: PluginStub) -> None:
    plan = build_engine(save_model(tmp_path / "fornet.onnx", batch=1), tmp_path / "out" / "native.plan")
    assert plan.is_file() and plugin_lib.calls == []
    assert EngineMetadata.load(tmp_path / "out" / "native.plan.json").plugin is None


def test_fixed_batch_rejects_batch_options(tmp_path: Path, fake_trt: Any) -> None:
    with pytest.raises(BuildOptionsError, match=r"fixed batch.*--dynamic-batch"):
        build_engine(save_model(tmp_path / "m.onnx", batch=1), options=BuildOptions(max_batch=4))


def test_parser_errors_are_reported_node_by_node(tmp_path: Path, fake_trt: Any, recorder: Recorder) -> None:
    recorder.parse_ok = False
    with pytest.raises(OnnxParseError, match=r"node 7 \(Frobnicate '/head/frob'\): No importer"):
        build_engine(save_model(tmp_path / "m.onnx"))


def test_failed_build_quotes_the_log_and_writes_nothing(tmp_path: Path, fake_trt: Any, recorder: Recorder) -> None:
    recorder.build_ok = False
    with pytest.raises(EngineBuildError, match=r"(?s)failed to build.*out of workspace memory.*--workspace"):
        build_engine(save_model(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.plan").exists() and not (tmp_path / "m.plan.json").exists()


def test_mismatched_timing_cache(tmp_path: Path, fake_trt: Any, recorder: Recorder) -> None:
    recorder.timing_cache_matches = False
    cache = tmp_path / "other-gpu.cache"
    cache.write_bytes(b"x")
    with pytest.raises(EngineBuildError, match=r"another GPU.*delete it"):
        build_engine(save_model(tmp_path / "m.onnx"), options=BuildOptions(timing_cache=cache))


def write_cache(path: Path, version: int = 100300) -> Path:
    path.write_text(f"TRT-{version}-EntropyCalibration2\nimage: 3c010a14\nx: 3d4ccccd\n")
    return path


def test_legacy_int8_path_on_10x(tmp_path: Path, fake_trt: Any, recorder: Recorder) -> None:
    plan = build_engine(save_model(tmp_path / "fornet.onnx"),
                        options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache")))
    assert recorder.network_flags == 0  # precision flags need a weakly typed network
    config = recorder.config
    assert config is not None and config.flags == [fake_trt.BuilderFlag.INT8]
    assert config.int8_calibrator.read_calibration_cache().startswith(b"TRT-100300-")
    assert config.int8_calibrator.get_batch(["image"]) is None
    # a dynamic batch needs a calibration profile on the implicit INT8 path (IBuilderConfig::setCalibrationProfile)
    assert config.calibration_profile is config.profiles[0]
    record = EngineMetadata.load(plan.with_name("fornet.plan.json"))
    assert record.built_precision == "int8-legacy-calibration" and record.strongly_typed is False
    assert record.calibration_cache == CalibrationCacheInfo("c.cache", sha256_file(tmp_path / "c.cache"), 100300)


def test_legacy_int8_with_a_fixed_batch_sets_no_calibration_profile(tmp_path: Path, fake_trt: Any,
                                                                     recorder: Recorder) -> None:
    build_engine(save_model(tmp_path / "fornet.onnx", batch=1),
                 options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache")))
    assert recorder.config is not None and recorder.config.calibration_profile is None


def test_legacy_int8_refused_on_11x(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(recorder, version="11.1.0.106", legacy_int8=False))
    monkeypatch.setattr(tensorrt_build, "cuda_device", lambda: CudaDevice("H100", (9, 0)))
    with pytest.raises(LegacyInt8UnavailableError, match=r"removed in TensorRT 11.*fornet_int8.onnx"):
        build_engine(save_model(tmp_path / "fornet.onnx"),
                        options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache")))


def test_legacy_int8_cache_of_another_version(tmp_path: Path, fake_trt: Any) -> None:
    with pytest.raises(CalibrationCacheError, match=r"TensorRT 10.2.0, this is 10.3.0.*TRT-100300"):
        build_engine(save_model(tmp_path / "fornet.onnx"),
                     options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache", 100200)))


def test_legacy_int8_needs_the_fp32_graph(tmp_path: Path, fake_trt: Any) -> None:
    with pytest.raises(BuildOptionsError, match=r"calibrates an FP32 graph.*fornet_fp16.onnx is fp16"):
        build_engine(save_model(tmp_path / "fornet_fp16.onnx", kind="fp16"),
                     options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache")))
