"""runtime.openvino_backend: the OpenVINO backend through the registry, the Python API and the CLI.

Its labels are compared with ONNX Runtime's on the same exported files (FP32: identical argmax on
>= 99.9% of pixels); precision ``auto`` follows the CPU's BF16 capability; bad input is refused.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fornet.cli.bench import main as bench_main
from fornet.cli.run import main as run_main
from fornet.errors import FornetError
from fornet.runtime import ModelSpec, Segmenter
from fornet.runtime.backend import BackendError
from fornet.runtime.bench.record import BenchReport
from fornet.runtime.model_spec import ModelSpecError
from fornet.runtime.openvino_backend import OpenVinoBackend, cpu_capabilities, resolve_precision
from fornet.runtime.registry import backend_names, resolve_backend
from fornet.runtime.video.synthetic import pan_sequence
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import FRAME_SIZE

pytest.importorskip("openvino", reason="the openvino extra: pip install 'fornet-deploy[openvino]'")

#: Share of pixels whose FP32 label must equal ONNX Runtime's.
FP32_AGREEMENT = 0.999
HAS_BF16 = "BF16" in cpu_capabilities()


def _frames(count: int = 4) -> list[np.ndarray]:
    return [image for image, _ in pan_sequence(FRAME_SIZE, count, seed=5)]


def _labels(model: Path, frames: list[np.ndarray], **fields: object) -> tuple[list[np.ndarray], str]:
    with Segmenter(ModelSpec(model, device="cpu", threads=1, **fields)) as seg:  # type: ignore[arg-type]
        return [seg(frame) for frame in frames], seg.backend.label


def _agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b, strict=True)]))


def test_registered_after_onnxruntime() -> None:
    assert "openvino" in backend_names()
    assert resolve_backend("fornet.onnx", "openvino") is OpenVinoBackend
    assert resolve_backend("fornet.onnx").NAME == "onnxruntime"  # auto keeps ONNX Runtime for .onnx


@pytest.mark.parametrize("export", ["onnx", "raw_labels"])
def test_fp32_labels_equal_onnxruntime(lite: LiteExport, export: str) -> None:
    model = getattr(lite, export)
    frames = _frames()
    reference, _ = _labels(model, frames, backend="onnxruntime")
    labels, label = _labels(model, frames, backend="openvino", precision="fp32")
    assert label == "openvino-fp32-cpu"
    assert _agreement(reference, labels) >= FP32_AGREEMENT


def test_outputs_and_io_match_onnxruntime(lite: LiteExport) -> None:
    """The raw outputs: logits within FP32 rounding, masks (the inlined TopKGate) bit-identical."""
    from fornet.runtime.onnxrt import OnnxRuntimeBackend

    feed = {"image": np.random.default_rng(0).standard_normal((1, 3, 64, 128)).astype(np.float32)}
    with OnnxRuntimeBackend(lite.onnx, device="cpu") as ort, OpenVinoBackend(lite.onnx, precision="fp32") as ov:
        assert ov.input_specs == ort.input_specs and ov.output_specs == ort.output_specs
        expected, got = ort.infer(feed), ov.infer(feed)
    np.testing.assert_array_equal(got["masks"], expected["masks"])
    np.testing.assert_allclose(got["logits"], expected["logits"], rtol=1e-3, atol=1e-3)
    assert ov.last_inference_time is not None and not ov.is_active


def test_auto_precision_follows_the_cpu(lite: LiteExport) -> None:
    with OpenVinoBackend(lite.onnx) as backend:
        assert backend.inference_precision == ("bf16" if HAS_BF16 else "fp32")
        assert backend.label == f"openvino-{backend.inference_precision}-cpu"


def test_resolve_precision() -> None:
    assert resolve_precision("auto", ("BF16", "FP32", "INT8")) == "bf16"
    assert resolve_precision("auto", ("FP32", "INT8")) == "fp32"
    assert resolve_precision("fp32", ("BF16", "FP32")) == "fp32"
    with pytest.raises(BackendError, match=r"reports no BF16 .*pass --precision fp32"):
        resolve_precision("bf16", ("FP32", "INT8"))
    with pytest.raises(BackendError, match="not 'fp16'"):
        resolve_precision("fp16", ("BF16",))


@pytest.mark.skipif(not HAS_BF16, reason="this CPU reports no BF16 to OpenVINO")
def test_bf16_runs_in_bf16_close_to_fp32(lite: LiteExport) -> None:
    feed = {"image": np.random.default_rng(1).standard_normal((1, 3, 64, 128)).astype(np.float32)}
    with OpenVinoBackend(lite.onnx, precision="fp32") as fp32, OpenVinoBackend(lite.onnx, precision="bf16") as bf16:
        exact, rounded = fp32.infer(feed)["logits"], bf16.infer(feed)["logits"]
    assert not np.array_equal(exact, rounded)  # explicit fp32 is not OpenVINO's BF16 default
    assert np.mean(exact.argmax(1) == rounded.argmax(1)) >= 0.97


@pytest.mark.fault
@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"precision": "fp16"}, ModelSpecError, "runs fornet.onnx in auto or fp32 or bf16, not --precision fp16"),
    ({"device": "cuda:0"}, ModelSpecError, "the openvino backend runs on cpu, not cuda:0; pass --device cpu"),
    ({"cuda_graph": True}, ModelSpecError, "--cuda-graph does not apply to fornet.onnx"),
])
def test_bad_options_are_refused(lite: LiteExport, fields: dict[str, object], error: type[FornetError],
                                 message: str) -> None:
    with pytest.raises(error, match=message):
        Segmenter(ModelSpec(lite.onnx, backend="openvino", **fields))  # type: ignore[arg-type]


@pytest.mark.fault
def test_missing_and_damaged_files(lite: LiteExport, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="ONNX file not found"):
        OpenVinoBackend(tmp_path / "nope.onnx").activate()
    damaged = tmp_path / "fornet.onnx"
    damaged.write_bytes(lite.onnx.read_bytes()[:200])
    with pytest.raises(BackendError, match=r"cannot read .* export it again"):
        OpenVinoBackend(damaged).activate()
    with pytest.raises(BackendError, match="threads must be at least 1"):
        OpenVinoBackend(lite.onnx, threads=0)
    unknown_op = tmp_path / "unknown_op.onnx"
    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="elsewhere")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("elsewhere", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), unknown_op)
    with pytest.raises(BackendError, match=r"OpenVINO cannot compile .*unknown_op\.onnx .*--backend onnxruntime"):
        OpenVinoBackend(unknown_op).activate()


@pytest.mark.fault
def test_missing_openvino_names_the_extra(lite: LiteExport, tmp_path: Path) -> None:
    """A Python without openvino: ``fornet run --backend openvino`` exits 2 naming the extra to install."""
    blocker = ("import sys\n"
               "class NoOpenVino:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.partition('.')[0] == 'openvino':\n"
               "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
               "sys.meta_path.insert(0, NoOpenVino())\n"
               "from fornet.cli.main import main\n"
               "sys.exit(main(sys.argv[1:]))\n")
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), _frames(1)[0])
    done = subprocess.run([sys.executable, "-c", blocker, "run", str(frame), str(tmp_path / "out"), "--model",
                           str(lite.onnx), "--backend", "openvino", "--quiet"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert "the openvino backend needs openvino (pip install 'fornet-deploy[openvino]')" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_run_labels_equal_onnxruntime(lite: LiteExport, tmp_path: Path) -> None:
    frames = tmp_path / "in"
    frames.mkdir()
    for index, frame in enumerate(_frames(3)):
        cv2.imwrite(str(frames / f"f{index}.png"), frame)
    labels = {}
    for backend in ("onnxruntime", "openvino"):
        out = tmp_path / backend
        assert run_main([str(frames), "--model", str(lite.onnx), "--backend", backend, "--precision",
                         "fp32" if backend == "openvino" else "auto", "--device", "cpu", "--threads", "1",
                         "--labels", str(out), "--quiet"]) == 0
        labels[backend] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(out.iterdir())]
    assert len(labels["openvino"]) == 3
    assert _agreement(labels["onnxruntime"], labels["openvino"]) >= FP32_AGREEMENT


def test_cli_bench_beside_pytorch_with_accuracy(lite: LiteExport, synth_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert bench_main(["--model", str(lite.onnx), "--backend", "openvino", "--precision", "fp32", "--ckpt",
                       str(lite.checkpoint), "--warmup-s", "0", "--min-iters", "2", "--duration-s", "0", "--quiet",
                       "--threads", "1", "--device", "cpu", "--frame-size", "128x256", "--data", str(synth_root),
                       "--limit", "2", "--json", str(out)]) == 0
    assert "| engine compute | openvino-fp32-cpu |" in capsys.readouterr().out
    record = BenchReport.load(out)
    assert record.engine.backend == "openvino-fp32-cpu"
    assert record.speed is not None
    assert set(record.speed.scopes["compute"].results) == {"openvino-fp32-cpu", "pytorch-cpu"}
    assert record.accuracy is not None and record.accuracy.parity is not None
    assert record.accuracy.parity.agreement is not None and record.accuracy.parity.agreement > 0.99


FAST = ["--warmup-s", "0", "--min-iters", "2", "--duration-s", "0", "--quiet", "--threads", "1", "--device", "cpu",
        "--frame-size", "128x256"]


def test_cli_bench_compares_backends_in_one_interleaved_run(lite: LiteExport, synth_root: Path,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ONNX Runtime, OpenVINO FP32 (and BF16) and PyTorch timed together; each scored and compared with PyTorch."""
    out = tmp_path / "bench.json"
    compare = ["--compare", "openvino:fp32", *(["--compare", "openvino:bf16"] if HAS_BF16 else [])]
    assert bench_main(["--model", str(lite.onnx), *compare, "--ckpt", str(lite.checkpoint), *FAST, "--data",
                       str(synth_root), "--limit", "2", "--bf16-gate", "warn", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Speed-up of each compared backend over onnxruntime-cpu" in text
    record = BenchReport.load(out)
    compared = ["openvino-fp32-cpu", *(["openvino-bf16-cpu"] if HAS_BF16 else [])]
    assert record.speed is not None and record.accuracy is not None
    for scope in record.speed.scopes.values():
        assert list(scope.results) == ["onnxruntime-cpu", *compared, "pytorch-cpu"]
        assert scope.speedup is not None and scope.speedup_over_engine is not None
        assert set(scope.speedup_over_engine) == set(compared)
    assert record.speed.reference == "pytorch-cpu"
    assert set(record.accuracy.miou) == {"onnxruntime-cpu", "pytorch-cpu", *compared}
    parity = record.accuracy.compared_parity
    assert parity is not None and parity["openvino-fp32-cpu"].names == ("pytorch-cpu", "openvino-fp32-cpu")
    assert parity["openvino-fp32-cpu"].agreement is not None and parity["openvino-fp32-cpu"].agreement >= 0.999
    assert (record.bf16_gate is not None) == HAS_BF16
    assert record.environment.versions["openvino"]


@pytest.mark.fault
@pytest.mark.parametrize(("compare", "message"), [
    ("nosuch", "--compare nosuch: unknown backend 'nosuch'"),
    ("onnxruntime", "onnxruntime-cpu would be timed twice"),
    ("openvino:fp16", "--compare openvino:fp16: the openvino backend runs fornet.onnx in auto or fp32 or bf16"),
])
def test_bad_compare_is_explained(lite: LiteExport, compare: str, message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--model", str(lite.onnx), "--compare", compare, *FAST]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(not HAS_BF16, reason="this CPU reports no BF16 to OpenVINO")
def test_bf16_gate_refuses_a_drop_above_the_limit(lite: LiteExport, synth_root: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The gate's verdict follows the measured drop: refused above --max-miou-drop (nothing timed), kept at it."""
    argv = ["--model", str(lite.onnx), "--backend", "openvino", "--precision", "bf16", *FAST, "--data",
            str(synth_root), "--limit", "4"]
    measured = tmp_path / "measured.json"
    assert bench_main([*argv, "--skip-speed", "--max-miou-drop", "0", "--bf16-gate", "warn", "--json",
                       str(measured)]) == 0
    gate = BenchReport.load(measured).bf16_gate
    assert gate is not None and gate["openvino-bf16-cpu"].fp32 == "openvino-fp32-cpu"
    drop = gate["openvino-bf16-cpu"].miou_drop_points
    assert drop is not None
    capsys.readouterr()
    if drop > 0:
        assert bench_main([*argv, "--max-miou-drop", "0"]) == 2
        assert "BF16 gate openvino-bf16-cpu" in capsys.readouterr().err
    kept = tmp_path / "kept.json"
    assert bench_main([*argv, "--max-miou-drop", str(max(drop, 0) + 0.01), "--json", str(kept)]) == 0
    record = BenchReport.load(kept)
    assert record.bf16_gate is not None and record.bf16_gate["openvino-bf16-cpu"].passed and record.speed is not None


def test_bf16_gate_verdicts(caplog: pytest.LogCaptureFixture) -> None:
    from fornet.runtime.bench.bf16_gate import Bf16GateError, enforce
    from tests.helpers.record_samples import BENCH

    assert BENCH.bf16_gate is not None
    passed = BENCH.bf16_gate["openvino-bf16-cpu"]
    failed = replace(passed, miou_drop_points=0.8, bf16_miou=49.2, passed=False)
    enforce({"openvino-bf16-cpu": passed}, "refuse")
    with pytest.raises(Bf16GateError, match=r"drop 0\.800 points \(limit 0\.500\).*--bf16-gate warn"):
        enforce({"openvino-bf16-cpu": failed}, "refuse")
    enforce({"openvino-bf16-cpu": failed}, "warn")
    assert "drop 0.800 points (limit 0.500), pixel agreement 99.000%: FAIL (--bf16-gate warn" in caplog.text


@pytest.mark.slow
def test_served_by_openvino_equals_onnxruntime(lite: LiteExport, tmp_path: Path) -> None:
    """``fornet serve --backend openvino``: the Triton Python model runs OpenVINO; its labels are ONNX Runtime's."""
    from fornet.runtime.serving.client import SegmentationClient
    from fornet.runtime.serving.launcher import ServerProcess
    from tests.helpers.triton_server import frames, server_options

    options = server_options(lite.raw_labels, max_batch=2)
    options = replace(options, model=replace(options.model, backend="openvino", precision="fp32"))
    log = tmp_path / "server.log"
    with log.open("w") as stream:
        server = ServerProcess(options, log=stream).start()
        try:
            server.wait_ready(timeout_s=120)
            with SegmentationClient(options.http_url) as client, \
                    Segmenter(lite.raw_labels, backend="onnxruntime", device="cpu", threads=1) as local:
                batch = frames(3, FRAME_SIZE, seed=2)
                served, expected = [client.segment(f) for f in batch], [local(f) for f in batch]
        finally:
            status = server.stop(timeout_s=30)
    assert status == 0, log.read_text()
    assert "on openvino-fp32-cpu" in log.read_text()
    assert _agreement(expected, served) >= FP32_AGREEMENT


@pytest.mark.slow
def test_int8_file_runs_close_to_onnxruntime_int8(lite: LiteExport, synth_root: Path, tmp_path: Path) -> None:
    """``fornet_int8.onnx`` (Q/DQ) opens with OpenVINO; its labels are close to ONNX Runtime's INT8 labels
    (the two runtimes' INT8 kernels round differently, so not identical)."""
    from fornet.cli.export import main as export_main

    out = tmp_path / "int8"
    assert export_main(["--ckpt", str(lite.checkpoint), "--input-size", "64x128", "--out", str(out), "--no-verify",
                        "--quiet", "--int8", "--calib-data", str(synth_root), "--calib-method", "minmax", "--gate",
                        "plugin", "--no-accuracy-gate"]) == 0
    frames = _frames()
    reference, _ = _labels(out / "fornet_int8.onnx", frames, backend="onnxruntime")
    labels, label = _labels(out / "fornet_int8.onnx", frames, backend="openvino", precision="fp32")
    assert label == "openvino-fp32-cpu"
    assert _agreement(reference, labels) >= 0.97
