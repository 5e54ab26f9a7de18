"""The TensorRT backend's state machine against fakes of pycuda and TensorRT (see tests/helpers/fake_cuda.py
and tests/helpers/fake_tensorrt.py).

What is checked: loading and closing leave pycuda's context stack balanced and never pop after
the primary context was released; an error while loading surfaces as itself, not as a cleanup
error; version-compatible plans get ``engine_host_code_allowed``; CUDA-graph replay after a batch
change first executes once uncaptured and synchronises; the GPU pipeline frees its events and
kernels while the context is still current.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fornet.runtime.cuda.context import CudaContext
from fornet.runtime.errors import CudaError, EngineLoadError
from fornet.runtime.tensorrt import backend as trt_backend
from fornet.runtime.tensorrt.backend import EngineVersionError, TensorRTBackend, classify_load_failure
from fornet.runtime.tensorrt.plan_metadata import BuildSettings, GpuInfo
from fornet.runtime.tensorrt.plugins import PluginLibraryError
from tests.helpers.engine_metadata import engine_metadata
from tests.helpers.fake_cuda import CudaWorld, FakeLogicError, make_fake_pycuda
from tests.helpers.fake_tensorrt import FakeCudaGraph, TrtWorld, install_fake_tensorrt


@pytest.fixture
def cuda_world(monkeypatch: pytest.MonkeyPatch) -> CudaWorld:
    world = CudaWorld()
    package, driver = make_fake_pycuda(world)
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return world


@pytest.fixture
def trt_world(cuda_world: CudaWorld, monkeypatch: pytest.MonkeyPatch) -> TrtWorld:
    world = TrtWorld(cuda=cuda_world)
    install_fake_tensorrt(monkeypatch, world)
    return world


def write_plan(tmp_path: Path, *, version_compatible: bool = False, sidecar: bool = True) -> Path:
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    if sidecar:
        metadata = engine_metadata(gpu=GpuInfo("Fake GPU", "8.7"),
                                   build_options=BuildSettings(version_compatible=version_compatible))
        metadata.save(tmp_path / "fornet.plan.json")
    return plan


def assert_all_released(world: CudaWorld) -> None:
    assert world.stack() == [], "pycuda's context stack is not back where it started"
    assert world.retained == 0, "the primary context is still retained"
    assert not world.live, "device objects outlive the backend"
    assert world.dead_context_cleanups == [], "objects were freed after their context was released"


# ------------------------------------------------------------------ the fake encodes pycuda's rule

def test_fake_pycuda_refuses_pop_after_detach(cuda_world: CudaWorld) -> None:
    """The order the backend used before: detach inside ``with`` then pop (pycuda raises)."""
    context = CudaContext(0)
    with pytest.raises(FakeLogicError, match="cannot pop non-current context"), context:
        context._context.detach()  # what release() did inside the block


def test_release_inside_the_block_is_refused(cuda_world: CudaWorld) -> None:
    context = CudaContext(0)
    with context, pytest.raises(CudaError, match="leave the block first"):
        context.release()
    context.release()
    context.release()  # idempotent
    assert_all_released(cuda_world)


def test_close_releases_after_a_failing_free_and_raises_that_error(cuda_world: CudaWorld) -> None:
    context = CudaContext(0)

    def free() -> None:
        raise RuntimeError("free failed")

    with pytest.raises(RuntimeError, match="free failed"):
        context.close(free)
    assert_all_released(cuda_world)


# ------------------------------------------------------------------ backend lifecycle

def test_with_block_loads_and_closes_cleanly(tmp_path: Path, trt_world: TrtWorld, cuda_world: CudaWorld) -> None:
    with TensorRTBackend(write_plan(tmp_path)) as backend:
        out = backend.infer({"image": np.zeros((2, 3, 4, 4), np.float32)})
        assert out["out"].shape == (2, 4, 4)
    assert_all_released(cuda_world)
    assert cuda_world.log[-1] == "detach" and cuda_world.log[-2] == "pop"  # pop first, then release
    assert trt_world.host_code_allowed_at_deserialize is False  # TensorRT's safe default kept


@pytest.mark.parametrize(("log", "error"), [
    ("Cannot deserialize plugin since corresponding IPluginCreator not found in Plugin Registry", PluginLibraryError),
    ("The engine plan file is not compatible with this version of TensorRT, expecting library version 10.3 got "
     "10.13, please rebuild.", EngineVersionError),
])
def test_a_load_error_is_not_masked_by_cleanup(tmp_path: Path, cuda_world: CudaWorld, monkeypatch: pytest.MonkeyPatch,
                                               log: str, error: type[Exception]) -> None:
    install_fake_tensorrt(monkeypatch, TrtWorld(cuda=cuda_world, deserialize_ok=False, log_on_failure=log))

    def missing(path: Any = None) -> Path:
        raise PluginLibraryError("libfornet_plugins.so not found")

    monkeypatch.setattr(trt_backend, "load_plugin_library", missing)
    with pytest.raises(error) as caught:
        TensorRTBackend(write_plan(tmp_path, sidecar=False)).activate()
    assert not isinstance(caught.value, FakeLogicError)
    assert_all_released(cuda_world)


def test_version_compatible_plans_may_run_host_code(tmp_path: Path, trt_world: TrtWorld,
                                                    cuda_world: CudaWorld) -> None:
    with TensorRTBackend(write_plan(tmp_path, version_compatible=True)):
        pass
    assert trt_world.host_code_allowed_at_deserialize is True
    assert_all_released(cuda_world)


def test_a_refused_host_code_plan_is_not_blamed_on_the_version() -> None:
    log = "Engine host code is not allowed; the serialized engine was built with version compatibility"
    error = classify_load_failure(Path("fornet.plan"), "10.3.0.26", log, None)
    assert type(error) is EngineLoadError and "--version-compatible" in str(error)


# ------------------------------------------------------------------ CUDA graphs

def test_cuda_graph_is_recaptured_after_each_batch_change(tmp_path: Path, trt_world: TrtWorld,
                                                          cuda_world: CudaWorld,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    backend = TensorRTBackend(write_plan(tmp_path), cuda_graph=True)
    graphs: list[FakeCudaGraph] = []

    def capture(stream_handle: int, enqueue: Any) -> FakeCudaGraph:
        graph = FakeCudaGraph(trt_world, cuda_world.streams[stream_handle], backend._context, enqueue)
        graphs.append(graph)
        return graph

    monkeypatch.setattr("fornet.runtime.tensorrt.backend.CudaGraph", capture)
    with backend:
        for batch in (2, 2, 1, 2, 2):  # the fakes assert the rule on every capture and replay
            backend.infer({"image": np.zeros((batch, 3, 4, 4), np.float32)})
    assert len(graphs) == 3 and all(graph.destroyed for graph in graphs)
    plain = [batch for batch, captured in trt_world.executions if not captured]
    assert plain == [2, 1, 2]  # one uncaptured execution after each shape change
    assert_all_released(cuda_world)


# ------------------------------------------------------------------ GPU pipeline

class StubKernels:
    """GpuPrePost without nvcc: one device buffer, freed by free()."""

    def __init__(self, cuda: Any, io: Any) -> None:
        self.palette = cuda.mem_alloc(64)

    def free(self) -> None:
        self.palette.free()


def test_gpu_pipeline_frees_events_and_kernels_in_the_context(tmp_path: Path, trt_world: TrtWorld,
                                                              cuda_world: CudaWorld,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from fornet.runtime.pipelines import GpuPipeline

    monkeypatch.setattr("fornet.runtime.pipelines.GpuPrePost", StubKernels)
    io = types.SimpleNamespace(batch=None, input_dtype=np.dtype(np.float32), input_shape=lambda b: (b, 3, 4, 4))
    backend = TensorRTBackend(write_plan(tmp_path))
    backend.activate()
    pipeline = GpuPipeline(backend, io)  # type: ignore[arg-type]
    pipeline.close()
    pipeline.close()  # idempotent
    backend.deactivate()
    assert_all_released(cuda_world)


# ------------------------------------------------------------------ the same on a real GPU

@pytest.mark.gpu
def test_real_pycuda_context_closes_cleanly() -> None:
    """With real pycuda: nested and cross-call use, then close(); nothing is left on pycuda's stack."""
    driver = pytest.importorskip("pycuda.driver")
    context = CudaContext(0)
    with context, context:
        allocation = context.driver.mem_alloc(1 << 20)
    context.close(allocation.free)
    assert driver.Context.get_current() is None
    with pytest.raises(CudaError, match="released"), context:
        pass


@pytest.mark.fault
def test_a_plan_refuses_a_plugin_library_it_was_not_built_with(tmp_path: Path, trt_world: TrtWorld,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's sha256 is compared with the plan's record before the library is even loaded; the refusal
    names both digests and the exact rebuild command. The library the plan was built with loads."""
    from fornet.hashing import sha256_file
    from fornet.runtime.tensorrt.plan_metadata import PluginInfo

    loaded: list[Path] = []
    monkeypatch.setattr(trt_backend, "load_plugin_library", lambda path=None: loaded.append(Path(path)) or Path(path))
    built_with = tmp_path / "libfornet_plugins.so"
    built_with.write_bytes(b"the library the plan was built with")
    other = tmp_path / "rebuilt" / "libfornet_plugins.so"
    other.parent.mkdir()
    other.write_bytes(b"a rebuilt library")
    plan = write_plan(tmp_path)
    metadata = engine_metadata(gpu=GpuInfo("Fake GPU", "8.7"),
                               plugin=PluginInfo("libfornet_plugins.so", sha256_file(built_with), "TopKGate/1/fornet"))
    metadata.save(tmp_path / "fornet.plan.json")
    with pytest.raises(EngineVersionError, match=r"built with the TopKGate plugin libfornet_plugins\.so \(sha256 "
                                                 rf"{sha256_file(built_with)[:12]}\.\.\.\) but the library found here, "
                                                 rf".*rebuilt/libfornet_plugins\.so, has sha256 "
                                                 rf"{sha256_file(other)[:12]}\.\.\.: .*Rebuild the plan with this "
                                                 r"library \(`fornet-build") as info:
        TensorRTBackend(plan, plugin=other).activate()
    assert loaded == [] and metadata.fornet_build_command in str(info.value)
    with TensorRTBackend(plan, plugin=built_with):
        pass
    assert loaded == [built_with]
