"""Segmenter: every backend through the same interface, self-configuration from sidecars, bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from fornet.calibration.preprocess import ImageError
from fornet.runtime import Segmenter
from fornet.runtime.backend import BackendError
from fornet.runtime.cpu_prepost import FrameError
from fornet.runtime.model_io import ModelSidecar, SidecarError, read_sidecar
from fornet.runtime.model_spec import ModelSpec, ModelSpecError
from fornet.runtime.registry import BackendChoiceError, resolve_backend
from fornet.runtime.segmenter import SegmenterError
from tests.helpers.runtime_models import INPUT_SIZE


def frame_of(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def backends(lite):
    """The same model behind every CPU backend, as segmenters."""
    segmenters = {
        "onnxruntime": Segmenter(lite.onnx, device="cpu", threads=1),
        "onnxruntime-fp16-io": Segmenter(lite.onnx_fp16, device="cpu", threads=1),
        "onnxruntime-raw-labels": Segmenter(lite.raw_labels, device="cpu", threads=1),
        "torch": Segmenter(ModelSpec(lite.checkpoint, device="cpu", input_size=INPUT_SIZE, threads=1)),
    }
    yield segmenters
    for seg in segmenters.values():
        seg.close()


@pytest.mark.parametrize("name", ["onnxruntime", "onnxruntime-fp16-io", "onnxruntime-raw-labels", "torch"])
@pytest.mark.parametrize("size", [(128, 256), (100, 150), (64, 128), (30, 41)])
def test_every_backend_labels_frames_at_their_size(backends, name, size):
    seg = backends[name]
    labels = seg(frame_of(size))
    assert labels.shape == size and labels.dtype == np.uint8
    assert labels.max() < 19
    assert seg.input_size == INPUT_SIZE and len(seg.classes) == 19 and seg.colors.shape == (19, 3)
    assert seg.last_times is not None and seg.last_times.infer > 0 and not seg.gpu_prepost


@pytest.mark.parametrize(("name", "minimum"), [("onnxruntime", 0.999), ("onnxruntime-fp16-io", 0.97),
                                               ("onnxruntime-raw-labels", 0.99)])
def test_backends_agree_with_pytorch(backends, name, minimum):
    frame = frame_of((128, 256), seed=1)
    reference = backends["torch"](frame)
    agreement = float((backends[name](frame) == reference).mean())
    assert agreement >= minimum, f"{name} agrees with PyTorch on {agreement:.4f} of the pixels"


def test_sidecar_configures_the_segmenter(backends):
    raw = backends["onnxruntime-raw-labels"].io
    assert raw.raw_input and raw.channel_order == "BGR" and raw.input_dtype == np.uint8
    assert raw.labels_output and raw.batch is None
    half = backends["onnxruntime-fp16-io"].io
    assert half.input_dtype == np.float16 and half.output_dtype == np.float16 and half.batch == 1
    assert backends["torch"].io.batch is None and backends["torch"].io.export_precision == "pytorch-fp32"


def test_batch_async_and_overlay_equal_single_calls(backends):
    seg = backends["onnxruntime-raw-labels"]  # dynamic batch: one model run for all frames
    frames = [frame_of((128, 256), 2), frame_of((50, 70), 3), frame_of((64, 128), 4)]
    singles = [seg(frame) for frame in frames]
    batched = seg.segment_batch(frames, overlay_alpha=0.4)
    for frame, single, result in zip(frames, singles, batched, strict=True):
        np.testing.assert_array_equal(result.labels, single)
        np.testing.assert_array_equal(result.overlay, seg.overlay(frame, single, 0.4))
    static = backends["onnxruntime"]  # static batch 1: one run per frame
    assert [r.labels.shape for r in static.segment_batch(frames)] == [f.shape[:2] for f in frames]
    futures = [static.submit(frame) for frame in frames]
    for future, frame in zip(futures, frames, strict=True):
        np.testing.assert_array_equal(future.result(timeout=60).labels, static(frame))


def test_worker_threads_may_call_the_segmenter(backends):
    seg, frame = backends["torch"], frame_of((64, 128), 5)
    expected = seg(frame)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(seg(frame))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(np.array_equal(r, expected) for r in results)


@pytest.mark.parametrize(("frame", "message"), [
    (np.zeros((32, 32, 3), np.float32), "frame 0 has dtype float32"),
    (np.zeros((32, 32), np.uint8), "COLOR_GRAY2BGR"),
    (np.zeros((32, 32, 4), np.uint8), "COLOR_BGRA2BGR"),
])
def test_bad_frames_raise_frame_errors(backends, frame, message):
    with pytest.raises(ImageError, match=message):
        backends["onnxruntime"](frame)
    with pytest.raises(ImageError):
        backends["onnxruntime"].submit(frame)


def test_bad_calls(backends):
    with pytest.raises(SegmenterError, match="got no frames"):
        backends["onnxruntime"].segment_batch([])
    with pytest.raises(FrameError, match="alpha"):
        backends["onnxruntime"].segment(frame_of((8, 8)), overlay_alpha=2.0)


def test_missing_and_unsupported_files(lite, tmp_path):
    with pytest.raises(SegmenterError, match=r"model file not found: .*nothing\.onnx; export one"):
        Segmenter(tmp_path / "nothing.onnx")
    with pytest.raises(BackendChoiceError, match=r"from its extension; pass a file ending in \.plan"):
        Segmenter(tmp_path / "model.tflite")
    with pytest.raises(BackendChoiceError, match="unknown backend 'nosuchbackend'"):
        Segmenter(lite.onnx, backend="nosuchbackend")
    with pytest.raises(BackendError, match=r"pass --input-size HxW \(input_size=\(H, W\)\)"):
        Segmenter(lite.checkpoint, device="cpu")
    alone = tmp_path / "alone.onnx"
    shutil.copy(lite.onnx, alone)
    with pytest.raises(SidecarError, match=r"alone\.onnx\.json not found; fornet-export writes it beside"):
        Segmenter(alone)


def test_sidecar_for_another_model_is_refused(lite, tmp_path):
    data = json.loads(lite.onnx.with_name(lite.onnx.name + ".json").read_text())
    assert data["format"] == ModelSidecar.format_tag() == "fornet-deploy/onnx-sidecar/1"
    data["input"]["size"] = [128, 256]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    with pytest.raises(SidecarError, match=r"describes input 'image' as \?x3x128x256 float32 but the model takes"):
        Segmenter(lite.onnx, device="cpu", sidecar=wrong)
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SidecarError, match="is not a fornet-deploy ONNX sidecar"):
        read_sidecar(tmp_path / "other.json")


def test_plan_without_tensorrt_is_a_clear_error(lite, tmp_path):
    """The missing library is named first, before any check of the plan's files (no sidecar here)."""
    from fornet.runtime.tensorrt.env import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed: the GPU tests cover plans")
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"not really a plan")
    with pytest.raises(BackendError, match=r"the tensorrt backend needs tensorrt") as info:
        Segmenter(plan)
    assert "pip install tensorrt" in str(info.value) and "sidecar" not in str(info.value)


def test_closed_segmenter_refuses_work(lite):
    seg = Segmenter(lite.onnx, device="cpu")
    with seg:
        seg(frame_of((16, 16)))
    assert not seg.backend.is_active
    with pytest.raises(SegmenterError, match="was closed"):
        seg(frame_of((16, 16)))
    seg.close()  # twice is harmless


def test_resolve_backend_by_extension():
    assert [resolve_backend(p).NAME for p in ("a.plan", "b.ENGINE", "c.onnx", "d.pth")] == [
        "tensorrt", "tensorrt", "onnxruntime", "torch"]
    assert resolve_backend("weights.bin", "onnxruntime").NAME == "onnxruntime"


@pytest.mark.parametrize(("fields", "message"), [
    ({"path": "m.onnx", "cuda_graph": True}, r"--cuda-graph does not apply to m\.onnx, which opens with the "
                                             r"onnxruntime backend; it applies to tensorrt"),
    ({"path": "m.onnx", "input_size": (64, 128)}, r"--input-size does not apply .* it applies to torch"),
    ({"path": "m.plan", "device": "cpu"}, r"the tensorrt backend runs on cuda, not cpu; pass --device cuda:0"),
    ({"path": "m.onnx", "precision": "fp16"}, r"an exported file fixes its precision"),
    ({"path": "m.onnx", "prepost": "gpu"}, r"--prepost gpu: the onnxruntime backend has no GPU pre/post kernels"),
])
def test_a_spec_field_its_backend_ignores_is_refused_by_flag(fields, message):
    with pytest.raises(ModelSpecError, match=message):
        ModelSpec(**fields).backend_class()


def test_device_spellings_name_the_same_device():
    assert {ModelSpec("m.onnx", device=d).device for d in (1, "1", "cuda:1", "CUDA:1")} == {"cuda:1"}
    assert ModelSpec("m.onnx", device="cuda").device == "cuda:0"
    with pytest.raises(ModelSpecError, match="--device: expected a device"):
        ModelSpec("m.onnx", device="gpu0")


def test_importing_the_api_loads_no_backend():
    code = ("import sys; from fornet.runtime import Segmenter; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'pycuda', 'cv2') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_swapped_sidecars_are_refused_naming_both_files(lite, tmp_path):
    model = tmp_path / "fornet.onnx"
    shutil.copy(lite.onnx, model)
    shutil.copy(lite.onnx_fp16.with_name(lite.onnx_fp16.name + ".json"), tmp_path / "fornet.onnx.json")
    with pytest.raises(SidecarError, match=r"(?s)fornet\.onnx\.json describes fornet_fp16\.onnx .*fp16.* but "
                                           r".*fornet\.onnx has sha256 .*verify_sidecar=False"):
        Segmenter(model, device="cpu")
    with pytest.raises(SidecarError, match=r"describes input 'image' as .* float16"):
        Segmenter(model, device="cpu", verify_sidecar=False)  # the I/O check still runs


def test_an_edited_model_loads_only_with_the_override(lite, tmp_path):
    import onnx

    model = tmp_path / "fornet.onnx"
    graph = onnx.load(lite.onnx)
    graph.doc_string = "edited on purpose"
    onnx.save(graph, model)
    shutil.copy(lite.onnx.with_name(lite.onnx.name + ".json"), tmp_path / "fornet.onnx.json")
    with pytest.raises(SidecarError, match="the sidecar belongs to another export"):
        Segmenter(model, device="cpu")
    with Segmenter(model, device="cpu", verify_sidecar=False) as seg:
        assert seg(frame_of((64, 128))).shape == (64, 128)


def test_a_plan_must_match_its_metadata_and_source_onnx(lite, tmp_path):
    from fornet.records import FileDigest
    from fornet.runtime.tensorrt.plan_metadata import check_plan_binding
    from tests.helpers.engine_metadata import engine_metadata

    sidecar_path = lite.onnx.with_name(lite.onnx.name + ".json")
    sidecar = ModelSidecar.load(sidecar_path)
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan bytes")
    from fornet.hashing import sha256_file

    good = engine_metadata(plan=FileDigest("fornet.plan", sha256_file(plan)),
                           source_onnx=FileDigest("fornet.onnx", sidecar.onnx.sha256))
    good.save(tmp_path / "fornet.plan.json")
    check_plan_binding(sidecar, sidecar_path, plan)
    plan.write_bytes(b"another plan")
    with pytest.raises(SidecarError, match="the plan was replaced or the metadata belongs to another plan"):
        check_plan_binding(sidecar, sidecar_path, plan)
    engine_metadata(plan=FileDigest("fornet.plan", sha256_file(plan)),
                    source_onnx=FileDigest("other.onnx", "f" * 64)).save(tmp_path / "fornet.plan.json")
    with pytest.raises(SidecarError, match=r"was built from other\.onnx .* but .* describes fornet\.onnx"):
        check_plan_binding(sidecar, sidecar_path, plan)


@pytest.mark.fault
@pytest.mark.parametrize("keep", [0, 1000])
def test_a_damaged_onnx_file_is_named_damaged_not_foreign(lite, tmp_path, keep):
    """An empty or truncated model beside its own sidecar: the model file is called damaged (the sidecar's sha256
    check used to call the sidecar another export's)."""
    broken = tmp_path / "fornet.onnx"
    broken.write_bytes(lite.onnx.read_bytes()[:keep])
    shutil.copy(lite.onnx.with_name("fornet.onnx.json"), tmp_path / "fornet.onnx.json")
    with pytest.raises(BackendError, match=r"ONNX Runtime cannot load .*fornet\.onnx .*truncated or not an ONNX "
                                           r"model: export it again") as info:
        Segmenter(broken, device="cpu")
    assert "another export" not in str(info.value)
