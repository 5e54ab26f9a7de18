"""TensorRT backend and the pycuda/CUDA layer: the checks that run anywhere, and GPU tests that skip here.

The GPU tests build a plan from a native-gate export (no plugin library needed), then compare the
TensorRT segmenter with GPU pre/post against CPU pre/post (bit-identical input, so identical labels)
and against ONNX Runtime.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fornet.errors import FornetError
from fornet.export.tensorrt.inspect import EngineLoadError
from fornet.records import FileDigest
from fornet.runtime.backend import BackendError
from fornet.runtime.cuda.device import NoGpuError
from fornet.runtime.errors import CudaError, TensorRTError
from fornet.runtime.model_io import SidecarError
from fornet.runtime.tensorrt.backend import (
    EngineVersionError,
    TensorRTBackend,
    check_engine_compatibility,
    classify_load_failure,
)
from fornet.runtime.tensorrt.env import tensorrt_available
from fornet.runtime.tensorrt.plan_metadata import BuildSettings, metadata_path, onnx_sidecar_for_plan
from fornet.runtime.tensorrt.plugins import PluginLibraryError
from tests.helpers.engine_metadata import ORIN, engine_metadata
from tests.helpers.runtime_models import INPUT_SIZE

PLAN = Path("fornet.plan")
METADATA = ORIN


def pycuda_importable() -> bool:
    try:
        importlib.import_module("pycuda.driver")
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ plan compatibility

def test_same_release_and_gpu_pass():
    check_engine_compatibility(PLAN, METADATA, "10.3.0.30", (8, 7))  # build number may differ
    check_engine_compatibility(PLAN, None, "11.1.0", (9, 0))  # no sidecar: TensorRT decides


def test_another_tensorrt_release_is_named():
    with pytest.raises(EngineVersionError, match=r"built by TensorRT 10\.3\.0\.26 but this machine has TensorRT "
                                                 r"10\.13\.0\.35.*`fornet-build --onnx fornet.onnx`"):
        check_engine_compatibility(PLAN, METADATA, "10.13.0.35", (8, 7))


def test_version_compatible_plans_run_on_newer_releases_only():
    compatible = engine_metadata(build_options=BuildSettings(version_compatible=True))
    check_engine_compatibility(PLAN, compatible, "11.1.0", (8, 7))
    with pytest.raises(EngineVersionError, match="--version-compatible"):
        check_engine_compatibility(PLAN, replace(compatible, tensorrt_version="11.1.0"), "10.3.0", (8, 7))


def test_another_gpu_generation_is_named():
    with pytest.raises(EngineVersionError, match=r"built for Orin \(compute capability 8\.7\) but this GPU has "
                                                 r"compute capability 9\.0"):
        check_engine_compatibility(PLAN, METADATA, "10.3.0", (9, 0))
    portable = engine_metadata(build_options=BuildSettings(hardware_compat="ampere+"))
    check_engine_compatibility(PLAN, portable, "10.3.0", (9, 0))


@pytest.mark.parametrize(("log", "error", "message"), [
    ("[E] 1: [stdArchiveReader.cpp] Magic tag does not match", EngineLoadError, "is not a TensorRT plan"),
    ("[E] The engine plan file is not compatible with this version of TensorRT, expecting library version 10.13",
     EngineVersionError, "built by another TensorRT version"),
    ("[E] Cannot deserialize plugin since corresponding IPluginCreator not found in Plugin Registry",
     PluginLibraryError, "needs the TopKGate plugin library"),
    ("[E] out of memory", EngineLoadError, "cannot deserialise"),
])
def test_load_failures_are_classified_from_the_log(log, error, message):
    found = classify_load_failure(PLAN, "10.3.0", log, None)
    assert type(found) is error and message in str(found) and log in str(found)


def test_a_deferred_plugin_error_is_reported_with_the_failure():
    found = classify_load_failure(PLAN, "10.3.0", "[E] deserialization failed", PluginLibraryError("not found: x"))
    assert isinstance(found, PluginLibraryError) and "not found: x" in str(found)


# --------------------------------------------------------------- missing pieces, here

def test_missing_plan_file(tmp_path):
    with pytest.raises(BackendError, match=r"TensorRT plan not found: .*absent\.plan; build one with fornet-build"):
        TensorRTBackend(tmp_path / "absent.plan").activate()


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_missing_tensorrt_names_the_install(tmp_path):
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(Exception, match=r"apt install python3-libnvinfer.*pip install tensorrt") as info:
        TensorRTBackend(plan).activate()
    assert type(info.value).__name__ == "TensorRTUnavailableError"


def test_engine_from_another_version_is_reported_before_anything_else(tmp_path, monkeypatch):
    import fornet.runtime.tensorrt.backend as trt_backend

    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"\0" * 16)
    ORIN.save(tmp_path / "fornet.plan.json")
    monkeypatch.setattr(trt_backend, "require_tensorrt", lambda: "11.1.0.7")
    with pytest.raises(EngineVersionError, match=r"built by TensorRT 10\.3\.0\.26 but this machine has TensorRT 11"):
        TensorRTBackend(plan).activate()


@pytest.mark.skipif(pycuda_importable(), reason="pycuda is installed here")
def test_missing_pycuda_names_the_install():
    from fornet.runtime.cuda.context import CudaContext, PycudaUnavailableError

    with pytest.raises(PycudaUnavailableError, match="pip install pycuda"):
        CudaContext(0)


def test_pycuda_without_a_driver_is_a_gpu_error(monkeypatch):
    from fornet.runtime.cuda import context as cuda_context

    def fail(name):
        raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(cuda_context.importlib, "import_module", fail)
    with pytest.raises(NoGpuError, match="CUDA driver is not loadable"):
        cuda_context.require_pycuda()


def test_kernels_need_nvcc_at_run_time(monkeypatch):
    from fornet.runtime.cuda import prepost
    from fornet.runtime.cuda.prepost import KernelBuildError, compile_prepost_module

    monkeypatch.setattr(prepost, "find_nvcc", lambda: None)
    with pytest.raises(KernelBuildError, match="--prepost cpu"):
        compile_prepost_module()


def test_cuda_graph_without_a_driver(monkeypatch):
    import ctypes

    from fornet.runtime.cuda import graph as cuda_graph

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    with pytest.raises(CudaError, match="CUDA graphs need the NVIDIA driver"):
        cuda_graph.CudaGraph(0, lambda: None)


def test_cuda_errors_are_not_tensorrt_errors(monkeypatch, tmp_path):
    """The class says what failed: no nvcc, no CUDA driver or no GPU is CUDA's problem, even without TensorRT."""
    import torch

    from fornet.runtime.cuda import context as cuda_context
    from fornet.runtime.cuda import prepost
    from fornet.runtime.torch_backend import TorchBackend

    def no_driver(name):
        raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")

    def raised(call) -> Exception:
        with pytest.raises(FornetError) as info:
            call()
        return info.value

    monkeypatch.setattr(prepost, "find_nvcc", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    errors = [raised(prepost.compile_prepost_module),
              raised(TorchBackend(tmp_path / "model.pth", INPUT_SIZE, device="cuda:0").activate)]
    with monkeypatch.context() as patch:  # import_module is importlib's own: undone before anything else imports
        patch.setattr(cuda_context.importlib, "import_module", no_driver)
        errors.append(raised(cuda_context.require_pycuda))
    for error in errors:
        assert isinstance(error, CudaError) and not isinstance(error, TensorRTError), repr(error)


def test_a_plan_is_described_by_the_sidecar_of_its_source_onnx(tmp_path):
    plan = tmp_path / "fornet_fp16.plan"
    plan.write_bytes(b"plan")
    by_name = tmp_path / "fornet_fp16.onnx.json"  # fornet-build's default: <stem>.onnx -> <stem>.plan
    by_name.write_text("{}")
    assert onnx_sidecar_for_plan(plan) == by_name
    engine_metadata(source_onnx=FileDigest("exported.onnx", "1" * 64)).save(metadata_path(plan))
    assert onnx_sidecar_for_plan(plan) == by_name  # the recorded source's sidecar is not here
    recorded = tmp_path / "exported.onnx.json"
    recorded.write_text("{}")
    assert onnx_sidecar_for_plan(plan) == recorded  # the plan's own record names its source first
    by_name.unlink()
    recorded.unlink()
    with pytest.raises(SidecarError, match=r"no model sidecar for .*fornet_fp16\.plan \(looked for "
                                           r".*exported\.onnx\.json, .*fornet_fp16\.onnx\.json\)"):
        onnx_sidecar_for_plan(plan)


# ------------------------------------------------------------------------- on a GPU

@pytest.fixture(scope="module")
def plan(tmp_path_factory, lite):
    """A plan of the lite model with the native gate, and its sidecar beside it."""
    from fornet.export import ExportOptions, export_onnx
    from fornet.export.tensorrt.build import build_engine

    out = tmp_path_factory.mktemp("plan")
    result = export_onnx(lite.checkpoint, out, ExportOptions(input_size=INPUT_SIZE, gate="native", verify=False,
                                                             progress=False))
    return build_engine(result.onnx_path), result.onnx_path


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_gpu_pre_post_equal_cpu_pre_post_and_onnxruntime(plan):
    from fornet.runtime import Segmenter

    plan_path, onnx_path = plan
    frames = [np.random.default_rng(s).integers(0, 256, (h, w, 3), dtype=np.uint8)
              for s, (h, w) in enumerate([(128, 256), (100, 150), (64, 128), (720, 1280)])]
    with (Segmenter(plan_path) as gpu, Segmenter(plan_path, prepost="cpu") as cpu,
          Segmenter(plan_path, cuda_graph=True) as graph, Segmenter(onnx_path, device="cpu") as ort):
        assert gpu.gpu_prepost and not cpu.gpu_prepost
        for frame in frames:
            labels = gpu(frame)
            np.testing.assert_array_equal(labels, cpu(frame))
            np.testing.assert_array_equal(labels, graph(frame))
            assert (labels == ort(frame)).mean() >= 0.999
            fused = gpu.segment(frame, overlay_alpha=0.5)
            np.testing.assert_array_equal(fused.overlay, gpu.overlay(frame, fused.labels, 0.5))
        np.testing.assert_array_equal(gpu.submit(frames[0]).result(timeout=60).labels, gpu(frames[0]))
        assert gpu.last_times is not None and gpu.last_times.infer > 0


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_copies_and_compute_scopes_run(plan):
    from fornet.runtime import Segmenter

    with Segmenter(plan[0]) as seg:
        backend = seg.backend
        feed = seg.preprocess([np.zeros((64, 128, 3), np.uint8)])
        outputs = backend.infer(feed)
        assert outputs["logits"].shape == (1, 19, *INPUT_SIZE)
        backend.staged_compute(feed)()  # type: ignore[attr-defined]
