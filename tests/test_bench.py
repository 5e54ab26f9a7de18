"""fornet-bench: timing statistics, interleaving, the environment record, the CLI end to end, bad inputs."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from fornet.calibration.labels import CLASS_NAMES, TRAIN_TO_LABEL, class_table
from fornet.cli.bench import main
from fornet.runtime.bench.environment import ThreadSettings, collect_environment
from fornet.runtime.bench.record import BenchReport, ScopeRecord
from fornet.runtime.bench.report import iou_figure, latency_figure, render_markdown, write_report
from fornet.runtime.bench.runner import DISAGREEMENT_BGR, BenchResult
from fornet.runtime.bench.timing import LatencyStats, TimingError, TimingSettings, measure, spread_warning
from tests.helpers.engine_metadata import engine_metadata
from tests.helpers.record_samples import BENCH

FAST = ["--warmup-s", "0", "--min-iters", "2", "--duration-s", "0", "--quiet", "--threads", "1", "--device", "cpu"]


# -------------------------------------------------------------------------------- timing

def test_latency_statistics():
    stats = LatencyStats(tuple(float(v) for v in range(1, 101)), batch=2)
    summary = stats.to_record()
    assert summary.median_ms == 50.5 and summary.p90_ms == 90 and summary.p99_ms == 99
    assert summary.max_ms == 100 and summary.iterations == 100
    assert stats.throughput == pytest.approx(2 * 100 / (5050 / 1000))
    assert stats.cv == pytest.approx(np.std(np.arange(1, 101), ddof=1) / 50.5)
    assert LatencyStats((5.0,)).cv == 0.0
    assert spread_warning("x", LatencyStats((10.0, 10.1, 9.9))) is None
    assert "coefficient of variation 50.0% > 5%" in spread_warning("x", LatencyStats((5.0, 10.0, 15.0)))


def test_measure_interleaves_until_iterations_and_duration():
    calls: list[str] = []
    results = measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                      TimingSettings(warmup_s=0, min_iters=3, duration_s=0))
    assert calls[:2] == ["a", "b"]  # one warm-up call each
    assert calls[2:] == ["a", "b", "b", "a", "a", "b"]  # then A B, B A, A B
    assert {name: len(s.samples_ms) for name, s in results.items()} == {"a": 3, "b": 3}
    slow = measure({"s": lambda: time.sleep(0.01)}, TimingSettings(0, 1, 0.05))
    assert sum(slow["s"].samples_ms) >= 50 and len(slow["s"].samples_ms) >= 4


@pytest.mark.parametrize(("kwargs", "message"), [({"min_iters": 0}, "min_iters must be at least 1"),
                                                 ({"duration_s": -1}, "must be >= 0 s")])
def test_bad_timing_settings(kwargs, message):
    with pytest.raises(TimingError, match=message):
        TimingSettings(**kwargs)


def test_environment_record():
    env = collect_environment(ThreadSettings(requested=2))
    assert env.cpu and env.cpu_count is not None and env.cpu_count >= 1 and env.threads == ThreadSettings(2)
    assert env.versions["numpy"] == np.__version__ and "onnxruntime" in env.versions
    assert env.gpu is None or env.gpu.compute_capability


# ---------------------------------------------------------------------------------- CLI

def test_help_needs_no_backend():
    code = ("import sys; from fornet.cli.bench import COMMAND; text = COMMAND.parser().format_help(); "
            "assert '--engine' in text and '--warmup-s' in text and '--save-predictions' in text; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'pycuda') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_cli_end_to_end_with_reference_and_data(lite, synth_root, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["--engine", str(lite.onnx), "--ckpt", str(lite.checkpoint), *FAST, "--frame-size", "128x256",
                 "--data", str(synth_root), "--limit", "2", "--save-predictions", str(out / "preds"),
                 "--report", str(out / "report"), "--json", str(out / "bench.json"), "--overlays", "1"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| engine compute | onnxruntime-cpu |" in text
    assert "| end to end (pre + infer + post) | pytorch-cpu |" in text
    assert "Speed-up of onnxruntime-cpu over pytorch-cpu" in text and "pixel agreement pytorch-cpu vs" in text
    record = BenchReport.load(out / "bench.json")
    speed = record.speed
    assert speed is not None and speed.frame_size == (128, 256) and speed.input_size == (64, 128)
    for scope in ("compute", "copies", "end_to_end"):
        results, speedup = speed.scopes[scope].results, speed.scopes[scope].speedup
        assert set(results) == {"onnxruntime-cpu", "pytorch-cpu"} and speedup is not None and speedup > 0
        assert all(r is not None and r.iterations >= 2 and r.median_ms > 0 for r in results.values())
    assert speed.scopes["copies"].results == speed.scopes["compute"].results
    assert any("same measurement as compute" in n for n in speed.scopes["copies"].notes)
    assert 0 < speed.stages["onnxruntime-cpu"].prepost_share < 1
    accuracy = record.accuracy
    assert accuracy is not None and accuracy.images == 2
    assert accuracy.parity is not None and accuracy.parity.agreement is not None and accuracy.parity.agreement > 0.99
    assert set(accuracy.miou) == {"onnxruntime-cpu", "pytorch-cpu"}
    threads = record.environment.threads
    assert threads is not None and threads.torch == 1 and record.trtexec is None
    assert BenchReport.load(out / "report" / "report.json").speed is not None
    predictions = sorted((out / "preds").glob("*_pred_labelIds.png"))
    assert len(predictions) == 2
    label_ids = cv2.imread(str(predictions[0]), cv2.IMREAD_UNCHANGED)
    assert label_ids.shape == (128, 256) and set(np.unique(label_ids)) <= {0, *TRAIN_TO_LABEL.tolist()}
    names = {p.name for p in (out / "report").iterdir()}
    assert {"report.json", "summary.md", "latency.png", "iou.png"} <= names
    assert len([n for n in names if n.startswith("overlay_")]) == 1
    overlay = cv2.imread(str(next((out / "report").glob("overlay_*.png"))))
    assert overlay.shape[0] > 128 and overlay.shape[1] == 256, "the frame, then the class colour legend under it"
    legend = overlay[128:]
    assert (legend == DISAGREEMENT_BGR).all(axis=-1).sum() >= 100, "the swatch of the disagreement mark"
    assert len(np.unique(legend.reshape(-1, 3), axis=0)) > 3, "class swatches"
    figure = iou_figure(accuracy)
    ticks = figure.axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == list(CLASS_NAMES)
    assert [tuple(round(255 * c) for c in t.get_bbox_patch().get_facecolor()[:3]) for t in ticks] == [
        tuple(c) for c in class_table(len(CLASS_NAMES))[1]]


def _latency(samples: list[float]):
    return LatencyStats(tuple(samples)).to_record()


def test_latency_plot_panels_bins_units_and_whole_counts():
    """On a CPU the copies scope is the compute measurement: one panel for both, not two identical ones; both
    backends share the bins; medians carry their unit; the y-axis counts whole calls."""
    compute = {"onnxruntime-cpu": _latency([1.0, 1.2, 1.1, 1.3, 1.0]), "pytorch-cpu": _latency([5.0, 7.5, 9.0, 6.0])}
    end_to_end = {"onnxruntime-cpu": _latency([2.0, 2.5, 2.2]), "pytorch-cpu": _latency([8.0, 9.0, 10.0])}
    speed = replace(BENCH.speed, scopes={
        "compute": ScopeRecord("engine compute", compute, ()), "copies": ScopeRecord("engine + copies", compute, ()),
        "end_to_end": ScopeRecord("end to end", end_to_end, ())})
    figure = latency_figure(speed)
    assert [axis.get_title() for axis in figure.axes] == [
        "engine compute\n= engine + copies (same measurement)", "end to end"]
    for axis in figure.axes:
        legend = [text.get_text() for text in axis.get_legend().get_texts()]
        assert len(legend) == 2 and all(re.search(r"\(median [0-9.]+ ms\)$", text) for text in legend)
        lefts = [patch.get_x() for patch in axis.patches]
        assert lefts[:len(lefts) // 2] == lefts[len(lefts) // 2:], "one set of bins for both backends"
        assert all(float(tick).is_integer() for tick in axis.get_yticks())


def test_cli_engine_only_fp16(lite, capsys):
    assert main(["--engine", str(lite.onnx_fp16), *FAST, "--frame-size", "64x96"]) == 0
    text = capsys.readouterr().out
    assert "reference: none" in text and "Speed-up" not in text and "float16" in text


@pytest.mark.parametrize(("env", "quiet", "shown"), [("1", [], True), ("1", ["--quiet"], False), (None, [], False)])
def test_cli_progress_on_a_terminal_only(lite, capsys, monkeypatch, env, quiet, shown):
    """Progress (a line per step, tqdm bars) on stderr where it is wanted (a terminal; FORNET_PROGRESS=1 forces
    it here, where stderr is captured); none with --quiet or in a log. It used to print nothing for minutes."""
    if env is None:
        monkeypatch.delenv("FORNET_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("FORNET_PROGRESS", env)
    fast = [flag for flag in FAST if flag != "--quiet"]
    assert main(["--engine", str(lite.onnx), "--ckpt", str(lite.checkpoint), *fast, "--frame-size", "64x96",
                 *quiet]) == 0
    err = capsys.readouterr().err
    steps = [f"fornet bench: opening {lite.onnx} ...", f"fornet bench: opening the PyTorch reference {lite.checkpoint}",
             "fornet bench: timing 3 scopes", "engine compute: warm-up", "engine compute: "]
    assert all(step in err for step in steps) if shown else err == ""


@pytest.mark.parametrize(("extra", "message"), [
    (["--engine", "missing.onnx"], "model file not found: missing.onnx"),
    (["--engine", "model.tflite"], "cannot tell the backend of 'model.tflite' from its extension"),
    (["--engine", "{ckpt}"], "is a checkpoint, which does not fix the network input size: pass --input-size HxW"),
    (["--engine", "{onnx}", "--batch", "2"], "has a static batch of 1; pass --batch 1 or omit it"),
    (["--engine", "{onnx}", "--data", "{empty}"], "has no leftImg8bit/ folder"),
    (["--engine", "{onnx}", "--save-predictions", "p"], "--save-predictions writes the predictions on --data"),
    (["--engine", "{onnx}", "--skip-speed"], "--skip-speed needs --data"),
    (["--engine", "{onnx}", "--min-iters", "0"], "min_iters must be at least 1"),
])
def test_bad_inputs_are_explained(lite, tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    argv = [a.format(onnx=lite.onnx, ckpt=lite.checkpoint, empty=tmp_path / "empty") for a in extra]
    assert main([*argv, "--quiet", "--device", "cpu", "--duration-s", "0", "--warmup-s", "0"]) == 2
    assert message in capsys.readouterr().err


def test_report_without_matplotlib(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    record = BENCH
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    paths = write_report(tmp_path, BenchResult(record, [("img", np.zeros((4, 4, 3), np.uint8))]))
    assert {p.name for p in paths} == {"summary.md", "report.json", "overlay_img.png"}
    assert "plots skipped: matplotlib is not installed" in (tmp_path / "summary.md").read_text()


def test_markdown_states_scopes_trtexec_and_advice():
    text = render_markdown(BENCH, ["a.png"])
    assert "trtexec equivalent of the compute scope" in text and "`trtexec --loadEngine=x.plan`" in text
    assert "- warning: noisy" in text and "- so: the machine may be busy" in text and "- a.png" in text
    assert "| onnxruntime-cpu | 0.1 | 1.0 | 0.1 | 15.0% |" in text


def test_trtexec_command_matches_the_compute_scope(lite, tmp_path, monkeypatch):
    from dataclasses import replace

    from fornet.runtime.bench.runner import trtexec_command
    from fornet.runtime.model_io import read_sidecar

    monkeypatch.delenv("FORNET_PLUGIN_LIB", raising=False)
    io = read_sidecar(lite.raw_labels.with_name("fornet.onnx.json"))  # dynamic batch, raw NHWC input
    plan = tmp_path / "fornet.plan"
    command = trtexec_command(plan, io, TimingSettings(0.2, 10, 2.5), batch=2, cuda_graph=True)
    assert command.startswith(f"trtexec --loadEngine={plan} --staticPlugins=")  # no sidecar: assume the plugin
    assert "--shapes=image:2x64x128x3 --warmUp=200 --iterations=10 --duration=3 --noDataTransfers" in command
    assert command.endswith("--useSpinWait --useCudaGraph")
    engine_metadata(plugin=None).save(tmp_path / "fornet.plan.json")
    static = trtexec_command(plan, replace(io, batch=1), TimingSettings())
    assert "--staticPlugins" not in static and "--shapes" not in static
