"""build_engine: the missing-TensorRT/GPU errors, and the build flow against the fake of the
TensorRT Python API (tests/helpers/fake_tensorrt.py; the names build_engine uses are the ones mypy
checks against the real stubs in test_tensorrt_static.py)."""

from __future__ import annotations

import sys
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
from fornet.runtime.cuda.device import CudaDevice, NoGpuError
from fornet.runtime.tensorrt.env import TensorRTUnavailableError
from fornet.runtime.tensorrt.plan_metadata import (
    BuildSettings,
    CalibrationCacheInfo,
    EngineMetadata,
    GpuInfo,
    ShapeProfile,
)
from tests.helpers.fake_tensorrt import PLAN_BYTES, TrtWorld, install_fake_tensorrt, make_stub_only_tensorrt
from tests.helpers.onnx_graphs import save_model


@pytest.fixture
def trt_world() -> TrtWorld:
    return TrtWorld()


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, trt_world: TrtWorld) -> Any:
    trt = install_fake_tensorrt(monkeypatch, trt_world)
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
    monkeypatch.setattr(tensorrt_build, "load_plugin_library", stub)
    return stub


def test_no_tensorrt_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    assert tensorrt_available() is False
    with pytest.raises(TensorRTUnavailableError, match=r"python3-libnvinfer.*pip install tensorrt"):
        build_engine(save_model(tmp_path / "m.onnx"))


def test_type_stubs_alone_do_not_count_as_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", make_stub_only_tensorrt())
    assert tensorrt_available() is False
    with pytest.raises(TensorRTUnavailableError, match=r"no bindings"):
        tensorrt_build.require_tensorrt()


def test_no_gpu_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trt_world: TrtWorld) -> None:
    install_fake_tensorrt(monkeypatch, trt_world)

    def no_gpu() -> CudaDevice:
        raise NoGpuError("no CUDA driver; run this on the Jetson")

    monkeypatch.setattr(tensorrt_build, "cuda_device", no_gpu)
    with pytest.raises(NoGpuError, match=r"Jetson"):
        build_engine(save_model(tmp_path / "m.onnx"))
    assert trt_world.network_flags is None  # failed before touching the builder


def test_strongly_typed_build_writes_plan_cache_and_sidecar(tmp_path: Path, fake_trt: Any, trt_world: TrtWorld,
                                                            plugin_lib: PluginStub) -> None:
    onnx_path = save_model(tmp_path / "fornet_fp16.onnx", gate=True, kind="fp16")
    cache = tmp_path / "orin.cache"
    cache.write_bytes(b"old")
    plan = build_engine(onnx_path, options=BuildOptions(workspace_mib=512, opt_level=5, timing_cache=cache,
                                                       max_batch=2, hardware_compat="ampere+",
                                                       version_compatible=True))
    assert plan == tmp_path / "fornet_fp16.plan" and plan.read_bytes() == PLAN_BYTES
    assert trt_world.network_flags == 1 << 1  # STRONGLY_TYPED is 1 in the 10.x enum
    config = trt_world.config
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


def test_gate_function_is_dropped_before_parsing(tmp_path: Path, fake_trt: Any, trt_world: TrtWorld,
                                                 plugin_lib: PluginStub) -> None:
    # TensorRT < 10.7 would expand the function (TopK, k <= 3840) instead of using the plugin
    onnx_path = save_model(tmp_path / "fornet.onnx", gate=True, function=True)
    build_engine(onnx_path)
    assert trt_world.parsed is not None and not trt_world.parsed.functions
    assert [n.op_type for n in trt_world.parsed.graph.node][-1] == "TopKGate"
    assert onnx.load(str(onnx_path)).functions  # the file itself is untouched


def test_native_gate_graph_needs_no_plugin(tmp_path: Path, fake_trt: Any, plugin_lib: PluginStub) -> None:
    plan = build_engine(save_model(tmp_path / "fornet.onnx", batch=1), tmp_path / "out" / "native.plan")
    assert plan.is_file() and plugin_lib.calls == []
    assert EngineMetadata.load(tmp_path / "out" / "native.plan.json").plugin is None


def test_fixed_batch_rejects_batch_options(tmp_path: Path, fake_trt: Any) -> None:
    with pytest.raises(BuildOptionsError, match=r"fixed batch.*--dynamic-batch"):
        build_engine(save_model(tmp_path / "m.onnx", batch=1), options=BuildOptions(max_batch=4))


def test_parser_errors_are_reported_node_by_node(tmp_path: Path, fake_trt: Any, trt_world: TrtWorld) -> None:
    trt_world.parse_ok = False
    with pytest.raises(OnnxParseError, match=r"node 7 \(Frobnicate '/head/frob'\): No importer"):
        build_engine(save_model(tmp_path / "m.onnx"))


def test_failed_build_quotes_the_log_and_writes_nothing(tmp_path: Path, fake_trt: Any, trt_world: TrtWorld) -> None:
    trt_world.build_ok = False
    trt_world.log_on_failure = "out of workspace memory in tactic X"
    with pytest.raises(EngineBuildError, match=r"(?s)failed to build.*out of workspace memory.*--workspace"):
        build_engine(save_model(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.plan").exists() and not (tmp_path / "m.plan.json").exists()


def test_mismatched_timing_cache(tmp_path: Path, fake_trt: Any, trt_world: TrtWorld) -> None:
    trt_world.timing_cache_matches = False
    cache = tmp_path / "other-gpu.cache"
    cache.write_bytes(b"x")
    with pytest.raises(EngineBuildError, match=r"another GPU.*delete it"):
        build_engine(save_model(tmp_path / "m.onnx"), options=BuildOptions(timing_cache=cache))


def write_cache(path: Path, version: int = 100300) -> Path:
    path.write_text(f"TRT-{version}-EntropyCalibration2\nimage: 3c010a14\nx: 3d4ccccd\n")
    return path


def test_legacy_int8_path_on_10x(tmp_path: Path, fake_trt: Any, trt_world: TrtWorld) -> None:
    plan = build_engine(save_model(tmp_path / "fornet.onnx"),
                        options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache")))
    assert trt_world.network_flags == 0  # precision flags need a weakly typed network
    config = trt_world.config
    assert config is not None and config.flags == [fake_trt.BuilderFlag.INT8]
    assert config.int8_calibrator.read_calibration_cache().startswith(b"TRT-100300-")
    assert config.int8_calibrator.get_batch(["image"]) is None
    # a dynamic batch needs a calibration profile on the implicit INT8 path (IBuilderConfig::setCalibrationProfile)
    assert config.calibration_profile is config.profiles[0]
    record = EngineMetadata.load(plan.with_name("fornet.plan.json"))
    assert record.built_precision == "int8-legacy-calibration" and record.strongly_typed is False
    assert record.calibration_cache == CalibrationCacheInfo("c.cache", sha256_file(tmp_path / "c.cache"), 100300)


def test_legacy_int8_with_a_fixed_batch_sets_no_calibration_profile(tmp_path: Path, fake_trt: Any,
                                                                     trt_world: TrtWorld) -> None:
    build_engine(save_model(tmp_path / "fornet.onnx", batch=1),
                 options=BuildOptions(legacy_int8_cache=write_cache(tmp_path / "c.cache")))
    assert trt_world.config is not None and trt_world.config.calibration_profile is None


def test_legacy_int8_refused_on_11x(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_tensorrt(monkeypatch, TrtWorld(version="11.1.0.106"))
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
