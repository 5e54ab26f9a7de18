"""The ``fornet-bench`` report: JSON record, Markdown summary, PNG plots and overlays.

``report.json`` holds everything (raw latency samples included); ``summary.md`` is the human
reading of it; ``latency.png`` (latency histograms per distinct measurement, shared bins, medians
in ms) and ``iou.png`` (per-class IoU bars, each class name on its colour) need matplotlib, and
are skipped with a note when it is missing; ``overlay_<image>.png`` show the engine's prediction
with the pixels where it disagrees with PyTorch (else with the ground truth) in magenta, above a
legend of the classes present"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from fornet.atomic import ensure_writable_dir, write_bytes_atomic, write_text_atomic
from fornet.calibration.labels import CLASS_NAMES, class_table
from fornet.runtime.bench.bf16_gate import describe
from fornet.runtime.bench.environment import ThreadSettings
from fornet.runtime.bench.record import AccuracyRecord, BenchReport, SpeedRecord
from fornet.runtime.bench.runner import SCOPES, BenchResult
from fornet.runtime.bench.timing import SPREAD_ADVICE, LatencySummary

_MATPLOTLIB_HINT = "plots skipped: matplotlib is not installed (pip install matplotlib)"


def write_json(path: str | os.PathLike[str], record: BenchReport) -> Path:
    """Write the record (``fornet-bench --json``) atomically; return its path."""
    return record.save(path)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _speed_lines(speed: SpeedRecord) -> list[str]:
    lines = [
        "## Speed", "",
        f"Frames: {speed.frame_size[0]}x{speed.frame_size[1]} uint8 BGR, network input "
        f"{speed.input_size[0]}x{speed.input_size[1]}, batch {speed.batch}. "
        f"Timing: {speed.settings.description}; {speed.timer}.", "",
        "| scope | backend | img/s | median ms | p90 ms | p99 ms | max ms | CV % | iterations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes: list[str] = []
    speedups = []
    over_engine = []
    for scope in SCOPES:
        entry = speed.scopes[scope]
        for label, stats in entry.results.items():
            if stats is None:
                lines.append(f"| {entry.title} | {label} | not measured | | | | | | |")
                continue
            lines.append(f"| {entry.title} | {label} | {stats.throughput_img_s:.2f} | {_ms(stats.median_ms)} "
                         f"| {_ms(stats.p90_ms)} | {_ms(stats.p99_ms)} | {_ms(stats.max_ms)} | "
                         f"{100 * stats.cv:.1f} | {stats.iterations} |")
        notes += entry.notes
        if entry.speedup is not None:
            speedups.append(f"{entry.title} {entry.speedup:.2f}x")
        if entry.speedup_over_engine:
            over_engine.append(f"{entry.title}: " + ", ".join(f"{label} {ratio:.2f}x"
                                                             for label, ratio in entry.speedup_over_engine.items()))
    if speedups:
        lines += ["", f"Speed-up of {speed.engine} over {speed.reference} (median latency ratio, same "
                      f"interleaved run): {'; '.join(speedups)}."]
    if over_engine:
        lines += ["", f"Speed-up of each compared backend over {speed.engine} (median latency ratio, same "
                      f"interleaved run): {'; '.join(over_engine)}."]
    lines += [""] + [f"- note: {note}" for note in notes]
    lines += ["", "End-to-end stages (median ms per call; GPU pre/post: CUDA event times):", "",
              "| backend | pre | infer | post | pre + post share of end to end |", "| --- | --- | --- | --- | --- |"]
    for label, stages in speed.stages.items():
        lines.append(f"| {label} | {_ms(stages.pre_ms)} | {_ms(stages.infer_ms)} | {_ms(stages.post_ms)} | "
                     f"{100 * stages.prepost_share:.1f}% |")
    if speed.warnings:
        lines += ["", *(f"- warning: {warning}" for warning in speed.warnings), f"- so: {SPREAD_ADVICE}"]
    return lines


def _accuracy_lines(accuracy: AccuracyRecord) -> list[str]:
    labels = list(accuracy.scores)
    lines = [f"## Accuracy ({accuracy.split} split of {accuracy.data}, {accuracy.images} images)", "",
             "| backend | mIoU % | pixel accuracy % |", "| --- | --- | --- |"]
    lines += [f"| {label} | {_pct(s.miou)} | {_pct(s.pixel_accuracy)} |" for label, s in accuracy.scores.items()]
    for parity in (accuracy.parity, *(accuracy.compared_parity or {}).values()):
        if parity is not None:
            lines += ["", "```", parity.text, "```"]
    header = " | ".join(f"{label} IoU %" for label in labels)
    delta_header = f" {labels[0]} - {labels[1]} |" if len(labels) == 2 else ""
    lines += ["", f"| class | {header} |{delta_header}",
              f"| --- |{' --- |' * len(labels)}{' --- |' if len(labels) == 2 else ''}"]
    for name in CLASS_NAMES:
        values = [accuracy.scores[label].iou[name] for label in labels]
        row = f"| {name} | " + " | ".join(_pct(v) for v in values) + " |"
        if len(labels) == 2 and accuracy.parity is not None:
            delta = accuracy.parity.iou_delta[name]
            row += f" {'n/a' if delta is None else f'{100 * delta:+.2f}'} |"
        lines.append(row)
    if accuracy.predictions:
        lines += ["", f"labelId PNGs for cityscapesscripts: {accuracy.predictions}"]
    return lines


def _threads(threads: ThreadSettings | None) -> str:
    if threads is None:
        return "not recorded"
    return (f"requested {threads.requested or 'default'}, ONNX Runtime intra-op {threads.onnxruntime_intra_op}, "
            f"PyTorch {threads.torch if threads.torch is not None else 'not loaded'}")


def _load(values: tuple[float, ...] | None) -> str:
    return "n/a" if not values else f"{values[0]:.2f}"


def render_markdown(record: BenchReport, files: list[str]) -> str:
    """The Markdown summary of a benchmark record."""
    engine, env, reference = record.engine, record.environment, record.reference
    gpu = env.gpu
    lines = [
        f"# fornet-bench: {engine.path}", "",
        f"- engine: {engine.backend}, {engine.model}; GPU pre/post: {'yes' if engine.gpu_prepost else 'no'}"
        f"{', CUDA graph' if engine.cuda_graph else ''}",
        f"- reference: {reference.backend} from {reference.checkpoint}"
        if reference else "- reference: none (pass --ckpt to compare with PyTorch)",
        f"- machine: {env.cpu} ({env.cpus_usable} CPUs usable), "
        f"GPU {gpu.name + ' (CUDA ' + gpu.driver_cuda_version + ')' if gpu else 'none'}, "
        f"load average {_load(env.load_average)} before, {_load(env.load_average_after)} after",
        f"- versions: {', '.join(f'{k} {v}' for k, v in env.versions.items() if v)}",
        f"- threads: {_threads(env.threads)}",
        f"- command: `{record.command}`",
    ]
    if env.jetson:
        jetson = env.jetson
        lines.append(f"- Jetson: {jetson.model or 'unknown board'}, L4T {jetson.l4t}, power mode "
                     f"{jetson.power_mode or 'unknown'}, GPU clocks {jetson.gpu_clock_hz or 'unknown'} Hz, EMC clock "
                     f"{jetson.emc_clock_hz or 'unknown'} Hz")
    if record.trtexec:
        lines.append(f"- trtexec equivalent of the compute scope (TensorRT 10.x: drop --noDataTransfers for its "
                     f"Latency with copies): `{record.trtexec}`")
    if record.speed is not None:
        lines += ["", *_speed_lines(record.speed)]
    if record.bf16_gate:
        lines += ["", "## BF16 gate", "", *(f"- {describe(label, gate)}" for label, gate in record.bf16_gate.items())]
    if record.accuracy is not None:
        lines += ["", *_accuracy_lines(record.accuracy)]
    if files:
        lines += ["", "## Files", ""] + [f"- {name}" for name in files]
    return "\n".join(lines) + "\n"


def _save_figure(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def latency_panels(speed: SpeedRecord) -> list[tuple[str, dict[str, LatencySummary]]]:
    """One panel per distinct measurement: a scope measured as the one before it (on a CPU, engine + copies is
    the engine compute measurement) shares that scope's panel, its title naming both."""
    panels: list[tuple[str, dict[str, LatencySummary]]] = []
    previous = None
    for scope in SCOPES:
        entry = speed.scopes[scope]
        measured = {label: stats for label, stats in entry.results.items() if stats is not None}
        if panels and entry.results == previous:
            panels[-1] = (f"{panels[-1][0]}\n= {entry.title} (same measurement)", panels[-1][1])
        elif measured:
            panels.append((entry.title, measured))
        previous = entry.results
    return panels


def latency_figure(speed: SpeedRecord) -> Any:
    """Histograms of the latency samples: one panel per distinct measurement, one colour per backend, the same
    bins for every backend of a panel, whole numbers of calls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = latency_panels(speed)
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, (title, measured) in zip(axes[0], panels, strict=True):
        edges = np.histogram_bin_edges(np.concatenate([stats.samples_ms for stats in measured.values()]), bins=30)
        for label, stats in measured.items():
            axis.hist(stats.samples_ms, bins=edges, alpha=0.6, label=f"{label} (median {stats.median_ms:.1f} ms)")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("latency per call (ms)")
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("calls")
    return figure


def plot_latency(speed: SpeedRecord, path: Path) -> None:
    """Write :func:`latency_figure` as a PNG."""
    import matplotlib.pyplot as plt

    figure = latency_figure(speed)
    _save_figure(figure, path)
    plt.close(figure)


def iou_figure(accuracy: AccuracyRecord) -> Any:
    """Per-class IoU bars of each backend; each class name is set on its class colour (the overlays' legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(accuracy.scores)
    positions = np.arange(len(CLASS_NAMES))
    width = 0.8 / len(labels)
    figure, axis = plt.subplots(figsize=(12, 4))
    for offset, label in enumerate(labels):
        values = [accuracy.scores[label].iou[name] for name in CLASS_NAMES]
        heights = [100 * v if v is not None else 0.0 for v in values]
        axis.bar(positions + offset * width, heights, width, label=f"{label} (mIoU {_pct(accuracy.miou[label])})")
    axis.set_xticks(positions + width * (len(labels) - 1) / 2, CLASS_NAMES, rotation=60, ha="right")
    for tick, rgb in zip(axis.get_xticklabels(), class_table(len(CLASS_NAMES))[1], strict=True):
        tick.set_bbox({"facecolor": tuple(c / 255 for c in rgb), "edgecolor": "none", "pad": 1.5})
        tick.set_color("white" if _luminance(rgb) < 128 else "black")
    axis.set_ylabel("IoU (%)")
    axis.legend()
    return figure


def _luminance(rgb: list[int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def plot_iou(accuracy: AccuracyRecord, path: Path) -> None:
    """Write :func:`iou_figure` as a PNG."""
    import matplotlib.pyplot as plt

    figure = iou_figure(accuracy)
    _save_figure(figure, path)
    plt.close(figure)


def write_report(directory: str | os.PathLike[str], result: BenchResult) -> list[Path]:
    """Write report.json, summary.md, the plots and the overlays into ``directory``; return the paths."""
    import cv2

    out = ensure_writable_dir(directory)
    written: list[Path] = []
    notes: list[str] = []
    record = result.record
    try:
        if record.speed is not None:
            plot_latency(record.speed, out / "latency.png")
            written.append(out / "latency.png")
        if record.accuracy is not None:
            plot_iou(record.accuracy, out / "iou.png")
            written.append(out / "iou.png")
    except ImportError:
        notes.append(_MATPLOTLIB_HINT)
    for name, image in result.overlays:
        ok, encoded = cv2.imencode(".png", image)
        if ok:
            write_bytes_atomic(out / f"overlay_{name}.png", encoded.tobytes())
            written.append(out / f"overlay_{name}.png")
    written.insert(0, record.save(out / "report.json"))
    summary = render_markdown(record, [p.name for p in written] + notes)
    write_text_atomic(out / "summary.md", summary)
    return [out / "summary.md", *written]
