"""fornet-export --int8 end to end: the files, the manifest's reuse and refusal rules, the gate and the fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fornet.cli.export import main
from fornet.export.int8.manifest import MANIFEST_NAME, RANGES_NAME, Int8Manifest, MethodKey, key_differences
from fornet.export.int8.qdq_graph import quantized_conv_names
from fornet.export.int8.sensitivity import LayerSensitivity
from fornet.export.sidecar import sha256_file
from fornet.export.tensorrt.calibration_cache import read_calibration_cache
from fornet.runtime.model_io import ModelSidecar
from tests.helpers.int8 import gate_report, lite_checkpoint

INT8_FILES = ("fornet_int8.onnx", "fornet_int8.onnx.json", "fornet.calib.cache", MANIFEST_NAME, RANGES_NAME)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lite_checkpoint(tmp_path_factory.mktemp("int8-cli"))


def _export(ckpt: Path, out: Path, data: Path, *extra: str) -> int:
    return main(["--ckpt", str(ckpt), "--input-size", "64x128", "--out", str(out), "--no-verify", "--quiet",
                 "--int8", "--calib-data", str(data), "--calib-method", "minmax", "--gate", "plugin", *extra])


@pytest.fixture(scope="module")
def exported(ckpt: Path, synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8-out")
    assert _export(ckpt, out, synth_root, "--trt-cache-version", "10.3.0") == 0
    return out


def _manifest(out: Path) -> Int8Manifest:
    return Int8Manifest.load(out / MANIFEST_NAME)


def test_writes_every_int8_file(exported: Path) -> None:
    assert all((exported / name).is_file() for name in INT8_FILES)
    manifest = _manifest(exported)
    gate = manifest.accuracy_gate
    assert manifest.status == "passed" and gate is not None and gate.k_exact is True
    key = manifest.calibration_key
    assert key.fp32_onnx_sha256 == sha256_file(exported / "fornet.onnx")
    assert key.images.count == 6 and len(manifest.calibration.images) == 6
    assert key.preprocessing.size == (64, 128) and key.method.name == "minmax"
    assert set(key.tools) == {"fornet-deploy", "onnxruntime", "onnx", "numpy", "opencv"}
    stats = manifest.calibration.input_stats
    assert stats is not None and stats.min[0] < 0 < stats.max[0]
    assert manifest.int8_onnx is not None and manifest.int8_onnx.sha256 == sha256_file(exported / "fornet_int8.onnx")
    assert manifest.quantization.float_nodes == ("/model/selector/head/Conv", "/model/gate/TopKGate")
    assert gate.split == "val" and gate.images == 4 and "road" in gate.iou and gate.data is not None
    assert 0 < gate.pixel_agreement <= 1 and 0 < gate.boundary_agreement <= 1
    sidecar = ModelSidecar.load(exported / "fornet_int8.onnx.json")
    assert sidecar.onnx.precision == "int8" and sidecar.topk.ks == (3, 6, 10, 13)


def test_cache_holds_the_graph_scales_under_fp32_names(exported: Path) -> None:
    cache = read_calibration_cache(exported / "fornet.calib.cache")
    assert cache.tensorrt_version == 100300
    fp32 = onnx.load(exported / "fornet.onnx")
    names = {i.name for i in fp32.graph.input} | {o for n in fp32.graph.node for o in n.output}
    assert set(cache.scales) <= names and "image" in cache.scales
    int8 = onnx.load(exported / "fornet_int8.onnx")
    inits = {i.name: numpy_helper.to_array(i) for i in int8.graph.initializer}
    quantized = {n.input[0]: float(inits[n.input[1]]) for n in int8.graph.node if n.op_type == "QuantizeLinear"}
    assert set(quantized) == set(cache.scales)
    assert all(cache.scales[name] == np.float32(scale) for name, scale in quantized.items())
    trt_cache = _manifest(exported).trt_cache
    assert trt_cache is not None and trt_cache.tensors == len(cache.scales) and trt_cache.tensorrt_version == "10.3.0"


def test_rerun_reuses_the_calibration(ckpt, synth_root, tmp_path, capsys, monkeypatch) -> None:
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate") == 0
    ranges = (tmp_path / RANGES_NAME).read_bytes()

    def no_calibration(*args: object, **kwargs: object) -> None:
        raise AssertionError("a matching calibration must be reused")

    monkeypatch.setattr("fornet.export.int8.pipeline.calibrate", no_calibration)
    capsys.readouterr()
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate", "--trt-cache-version", "10.13.0") == 0
    assert "INT8 calibration reused" in capsys.readouterr().out
    assert (tmp_path / RANGES_NAME).read_bytes() == ranges
    assert read_calibration_cache(tmp_path / "fornet.calib.cache").tensorrt_version == 101300
    manifest = _manifest(tmp_path)
    assert manifest.status == "not gated" and manifest.accuracy_gate is None
    assert manifest.calibration.reused is True and manifest.calibration.input_stats is not None


def test_changed_inputs_are_refused_before_anything_is_written(ckpt, synth_root, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert _export(ckpt, out, synth_root, "--no-accuracy-gate") == 0
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    other = lite_checkpoint(tmp_path, seed=5)
    capsys.readouterr()
    assert _export(other, out, synth_root, "--no-accuracy-gate", "--calib-images", "3") == 2
    err = capsys.readouterr().err
    assert "holds a calibration made from other inputs" in err and "--recalibrate" in err
    assert "fp32_onnx_sha256" in err and "images.count: 6 -> 3" in err
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before, "fornet.onnx and the INT8 files are kept"


def test_recalibrate_replaces_the_calibration(ckpt, synth_root, tmp_path) -> None:
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate") == 0
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate", "--calib-method", "percentile",
                   "--recalibrate") == 0
    assert _manifest(tmp_path).calibration_key.method == MethodKey(name="percentile", num_bins=2048, percentile=99.99)


def test_edited_ranges_are_refused(ckpt, synth_root, tmp_path, capsys) -> None:
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate") == 0
    (tmp_path / RANGES_NAME).write_text((tmp_path / RANGES_NAME).read_text().replace("]", ", 0]", 1))
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate") == 2
    assert "is missing or was modified" in capsys.readouterr().err


def test_key_differences_lists_every_leaf() -> None:
    old = {"a": 1, "b": {"c": 2, "d": [1, 2]}}
    assert key_differences(old, old) == []
    assert key_differences(old, {"a": 1, "b": {"c": 3, "d": [1, 2], "e": 0}}) == ["b.c: 2 -> 3", "b.e: None -> 0"]


def test_failed_gate_publishes_no_int8_graph(ckpt, synth_root, tmp_path, capsys, monkeypatch) -> None:
    assert _export(ckpt, tmp_path, synth_root, "--no-accuracy-gate") == 0
    monkeypatch.setattr("fornet.export.int8.pipeline.evaluate_int8", lambda *a, **k: gate_report(8))
    capsys.readouterr()
    assert _export(ckpt, tmp_path, synth_root) == 2
    err = capsys.readouterr().err
    assert "INT8 export refused" in err and "FAIL" in err and "--fallback-sensitive" in err
    for name in ("fornet_int8.onnx", "fornet_int8.onnx.json", "fornet.calib.cache"):
        assert not (tmp_path / name).exists(), f"stale {name} must be removed"
    manifest = _manifest(tmp_path)
    assert manifest.status == "failed" and manifest.accuracy_gate is not None and manifest.accuracy_gate.passed is False
    assert (tmp_path / RANGES_NAME).is_file() and manifest.int8_onnx is None
    assert "int8_onnx" not in (tmp_path / MANIFEST_NAME).read_text(), "a refused export has no int8_onnx entry"


def test_fallback_keeps_sensitive_layers_in_float(ckpt, synth_root, tmp_path, capsys, monkeypatch) -> None:
    sensitive = "/model/decoder/decoder.1/decoder.1.0/Conv"

    def gate(fp32: Path, int8: Path, *args: object, **kwargs: object):
        return gate_report(0 if sensitive not in quantized_conv_names(onnx.load(int8)) else 8)

    def ranking(fp32, ranges, candidates, keep, feeds, progress):
        assert sensitive in candidates and len(feeds) == 2
        return [LayerSensitivity(sensitive, 0.2), LayerSensitivity(candidates[0], 0.1)]

    monkeypatch.setattr("fornet.export.int8.pipeline.evaluate_int8", gate)
    monkeypatch.setattr("fornet.export.int8.pipeline.measure_sensitivity", ranking)
    assert _export(ckpt, tmp_path, synth_root, "--fallback-sensitive", "--sensitivity-images", "2") == 0
    assert f"kept in FP32 by the fallback: {sensitive}" in capsys.readouterr().out
    manifest = _manifest(tmp_path)
    assert manifest.status == "passed" and manifest.quantization.fallback_nodes == (sensitive,)
    assert manifest.sensitivity is not None and manifest.sensitivity.ranking[0] == LayerSensitivity(sensitive, 0.2)
    assert [s.passed for s in manifest.sensitivity.steps] == [True]
    int8 = onnx.load(tmp_path / "fornet_int8.onnx")
    assert sensitive not in quantized_conv_names(int8) and len(quantized_conv_names(int8)) > 20


@pytest.mark.parametrize(("args", "message"), [
    (["--int8"], "--int8 needs calibration images: add --calib-data"),
    (["--calib-data", "x"], "--calib-data is an INT8 option; add --int8"),
    (["--int8", "--calib-data", "MISSING"], "no calibration images: data set root"),
    (["--int8", "--calib-data", "DATA", "--trt-cache-version", "11.0.0"], "TensorRT 11 builds fornet_int8.onnx"),
    (["--int8", "--calib-data", "DATA", "--fallback-sensitive", "--no-accuracy-gate"], "needs the accuracy gate"),
    (["--int8", "--calib-data", "DATA", "--calib-images", "0"], "--calib-images must be at least 1"),
    (["--int8", "--calib-data", "DATA", "--eval-split", "test"], "the accuracy gate needs a labelled split"),
])
def test_int8_user_errors(ckpt, synth_root, tmp_path, capsys, args, message) -> None:
    args = [a.replace("MISSING", str(tmp_path / "none")).replace("DATA", str(synth_root)) for a in args]
    out = tmp_path / "out"
    code = main(["--ckpt", str(ckpt), "--input-size", "64x128", "--out", str(out), "--no-verify", "--quiet",
                 "--calib-method", "minmax", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert any(line.startswith("error: ") for line in err.splitlines()) and message in err  # after INT8 warnings
    assert not (out / "fornet_int8.onnx").exists()


def test_raw_bgr_input_is_calibrated_from_frames(ckpt, synth_root, tmp_path) -> None:
    assert _export(ckpt, tmp_path, synth_root, "--input", "raw", "--channel-order", "BGR", "--output", "labels") == 0
    manifest = _manifest(tmp_path)
    assert manifest.calibration_key.preprocessing.channel_order == "BGR"
    stats = manifest.calibration.input_stats
    assert stats is not None and max(stats.max) > 200, "raw frames are fed as uint8 0..255"
    assert manifest.status == "passed" and manifest.accuracy_gate is not None and manifest.accuracy_gate.k_exact


def test_dynamic_batch_graph(ckpt, synth_root, tmp_path) -> None:
    """Batches of 2 through calibration and gate; the logits feed both Resize and Shape (one DQ, two readers)."""
    assert _export(ckpt, tmp_path, synth_root, "--batch", "2", "--dynamic-batch") == 0
    manifest = _manifest(tmp_path)
    gate = manifest.accuracy_gate
    assert manifest.status == "passed" and gate is not None and gate.images == 4
    assert gate.selected_cells == [[3, 6, 10, 13]]
