"""Frame-size labels from class scores on the CPU: the exact fast path against the full resize-then-argmax.

Both give the same labels bit for bit (checked here before timing): the full path upsamples every
class's scores bilinearly to the frame size and takes the argmax
(:func:`fornet.runtime.cpu_prepost.upsampled_argmax`); the fast path
(:func:`fornet.runtime.cpu_prepost.upsampled_labels`, what the Segmenter runs) gives a frame pixel
the label its four network neighbours share for certain and interpolates only the rest. For context,
PyTorch's ``interpolate(mode="bilinear") + argmax`` (its own arithmetic: equal labels except near
ties, counted) is timed beside them.

Score maps at the network size, ``--classes`` classes:

* ``scene``: a generated street scene's trainIds, one-hot, scaled to 8, blurred (sigma 2 network
  pixels) plus noise (sigma 0.1): the shape of a trained network's logits;
* ``blobs``: 19 random fields of 16 x 32 control points, smoothly upsampled: many more boundaries;
* ``noise``: independent normal scores per pixel, the worst case: nearly every frame pixel needs
  interpolating, so the fast path hands over to the full path (the same labels, about its time).

    python benchmarks/post_upsample_bench.py --out benchmarks/post_upsample_results.md

Candidates are timed interleaved in one run (:func:`fornet.runtime.bench.timing.measure`); writes a
Markdown table and a JSON record beside it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from fornet.atomic import write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.errors import FornetError
from fornet.options import hw_arg
from fornet.runtime.cpu_prepost import post_threads

MAPS = ("scene", "blobs", "noise")


def score_map(kind: str, classes: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """``classes x H x W`` float32 scores of one kind (see the module docstring)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    if kind == "scene":
        from fornet.calibration.labels import label_ids_to_train_ids
        from fornet.calibration.synth_scene import render_scene

        train = label_ids_to_train_ids(render_scene(size, seed)[1]) % classes
        scores = np.stack([cv2.GaussianBlur((train == c).astype(np.float32) * 8, (0, 0), 2.0)
                           for c in range(classes)])
        return scores + rng.standard_normal(scores.shape).astype(np.float32) * np.float32(0.1)
    if kind == "noise":
        return rng.standard_normal((classes, h, w)).astype(np.float32)
    if kind == "blobs":
        low = rng.standard_normal((classes, 16, 32)).astype(np.float32) * 4
        return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in low])
    raise FornetError(f"--maps takes {', '.join(MAPS)}; unknown: {kind}")


def run_map(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Check and time the candidates on one score map; its record."""
    import os

    from fornet.runtime.bench.timing import TimingSettings, measure
    from fornet.runtime.cpu_prepost import upsampled_argmax, upsampled_labels

    scores = score_map(kind, args.classes, args.network, args.seed)
    frame = tuple(args.frame_size)
    fast, full = upsampled_labels(scores, frame), upsampled_argmax(scores, frame)
    if not np.array_equal(fast, full):
        raise FornetError(f"{kind}: the fast path differs from the full path on {(fast != full).sum()} pixels")
    candidates = {"fast path": lambda: upsampled_labels(scores, frame),
                  "full resize-then-argmax": lambda: upsampled_argmax(scores, frame)}
    torch_mismatch = None
    if args.torch:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.torch_threads)
        batch = torch.from_numpy(scores)[None]

        def torch_full() -> object:
            with torch.no_grad():
                return F.interpolate(batch, size=frame, mode="bilinear", align_corners=False)[0].argmax(0)

        candidates["torch interpolate + argmax"] = torch_full
        torch_mismatch = int((torch_full().numpy() != full).sum())
    # CPU time of the process (all its threads) beside the wall time: on a shared machine waiting for a core
    # inflates wall times, not the work done (the fast path computes on the post threads too).
    cpu_ms: dict[str, list[float]] = {name: [] for name in candidates}

    def on_cpu_clock(name: str, call: Any) -> Any:
        def timed() -> object:
            start = time.process_time()
            result = call()
            cpu_ms[name].append((time.process_time() - start) * 1000)
            return result
        return timed

    load_before = os.getloadavg()[0]
    stats = measure({name: on_cpu_clock(name, call) for name, call in candidates.items()},
                    TimingSettings(args.warmup_s, args.min_iters, args.duration_s), progress=True, desc=kind)
    records = {name: asdict(s.to_record()) for name, s in stats.items()}
    for record in records.values():
        del record["samples_ms"]
    # Interleaved: the i-th calls of the two ran back to back, under the same load.
    paired = sorted(full / fast for full, fast in zip(stats["full resize-then-argmax"].samples_ms,
                                                      stats["fast path"].samples_ms, strict=False))
    return {
        "map": kind, "load_average": [load_before, os.getloadavg()[0]],
        "open_pixels": open_share(scores, frame), "torch_mismatched_pixels": torch_mismatch,
        "candidates": records,
        "speedup": stats["full resize-then-argmax"].median / stats["fast path"].median,
        "paired_speedup": {"median": statistics.median(paired), "min": paired[0], "max": paired[-1]},
        "cpu_ms": {name: statistics.median(values) for name, values in cpu_ms.items()},
        "cpu_speedup": statistics.median(cpu_ms["full resize-then-argmax"]) / statistics.median(cpu_ms["fast path"]),
    }


def open_share(scores: np.ndarray, frame: tuple[int, int]) -> float:
    """The share of frame pixels the fast path interpolates (their cells are not certain)."""
    from fornet.runtime.cpu_prepost import certain_cells, linear_taps

    rows, cols = linear_taps(scores.shape[1], frame[0]), linear_taps(scores.shape[2], frame[1])
    return float((certain_cells(scores).take(rows.low, axis=0).take(cols.low, axis=1) == 255).mean())


def to_markdown(record: dict[str, Any]) -> str:
    """The results tables."""
    env = record["environment"]
    frame, network = record["frame_size"], record["network"]
    lines = [
        "# Frame-size labels from scores: exact fast path vs full resize-then-argmax (CPU)", "",
        f"- machine: {env['cpu']}, {env['cpus_usable']} CPUs usable, {env['platform']}, Python {env['python']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}",
        f"- date: {record['date']}",
        f"- command: `{record['command']}`",
        f"- {record['classes']} classes, float32 scores at {network[0]}x{network[1]} -> uint8 labels at "
        f"{frame[0]}x{frame[1]}; the fast path's labels equal the full path's on every pixel (checked first)",
        f"- timing: {record['timing']}, candidates interleaved; the fast path on "
        f"{record['post_threads']} post thread(s), the full path on one, PyTorch "
        f"{record['torch_threads']} thread(s)",
        "- cells: median ms (min ms - p90 ms, coefficient of variation)", "",
        "| map | frame pixels interpolated | fast path | full resize-then-argmax | full / fast (medians) | "
        "full / fast (paired calls: median, min - max) | "
        "torch interpolate + argmax | torch labels differing (ties) | load average |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [
        "", "CPU time of the process, all threads (median ms; what a call computes, without waiting for a core):", "",
        "| map | fast path | full resize-then-argmax | full / fast | torch interpolate + argmax |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in record["maps"]:
        cells, paired = row["candidates"], row["paired_speedup"]
        torch_cell = _cell(cells["torch interpolate + argmax"]) if "torch interpolate + argmax" in cells else "-"
        lines.append(
            f"| {row['map']} | {100 * row['open_pixels']:.1f}% | {_cell(cells['fast path'])} | "
            f"{_cell(cells['full resize-then-argmax'])} | {row['speedup']:.1f}x | {paired['median']:.1f}x "
            f"({paired['min']:.1f} - {paired['max']:.1f}) | {torch_cell} | "
            f"{row['torch_mismatched_pixels'] if row['torch_mismatched_pixels'] is not None else '-'} | "
            f"{row['load_average'][0]:.2f} -> {row['load_average'][1]:.2f} |")
        cpu = row["cpu_ms"]
        rows.append(f"| {row['map']} | {cpu['fast path']:.1f} | {cpu['full resize-then-argmax']:.1f} | "
                    f"{row['cpu_speedup']:.1f}x | {cpu.get('torch interpolate + argmax', float('nan')):.1f} |")
    lines += rows
    loads = [row["load_average"][0] for row in record["maps"]]
    if max(loads) > env["cpus_usable"]:
        lines += ["", f"The machine was shared and loaded (1-minute load average up to {max(loads):.1f} on "
                      f"{env['cpus_usable']} CPUs): wall times are inflated and spread widely; the paired ratio "
                      "compares calls made back to back under the same load, and the CPU-time table the work "
                      "itself."]
    return "\n".join(lines) + "\n"


def _cell(stats: dict[str, Any]) -> str:
    return (f"{stats['median_ms']:.1f} ({stats['min_ms']:.1f} - {stats['p90_ms']:.1f}, "
            f"{100 * stats['cv']:.0f}%)")


def build_parser() -> argparse.ArgumentParser:
    """The script's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/post-upsample/post_upsample_results.md"),
                        metavar="MD", help="Markdown results (a .json record is written beside it)")
    parser.add_argument("--frame-size", type=hw_arg, default=(1024, 2048), metavar="HxW",
                        help="frame size (default: 1024x2048)")
    parser.add_argument("--network", type=hw_arg, default=(512, 1024), metavar="HxW",
                        help="network output size (default: 512x1024)")
    parser.add_argument("--classes", type=int, default=19, help="classes (default: 19)")
    parser.add_argument("--maps", default=",".join(MAPS), help=f"score maps (default: {','.join(MAPS)})")
    parser.add_argument("--no-torch", dest="torch", action="store_false",
                        help="leave PyTorch's interpolate + argmax out")
    parser.add_argument("--torch-threads", type=int, default=1, metavar="N",
                        help="PyTorch threads (default: 1, as NumPy)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--warmup-s", type=float, default=0.2, metavar="S")
    parser.add_argument("--min-iters", type=int, default=10, metavar="N")
    parser.add_argument("--duration-s", type=float, default=3.0, metavar="S")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Check, time and write the results."""
    from fornet.runtime.bench.environment import collect_environment
    from fornet.runtime.bench.timing import TimingSettings

    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    maps = [m.strip() for m in args.maps.split(",") if m.strip()]
    record: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/post_upsample_bench.py", *arguments]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "environment": asdict(collect_environment()),
        "frame_size": list(args.frame_size), "network": list(args.network), "classes": args.classes,
        "torch_threads": args.torch_threads, "post_threads": post_threads(),
        "timing": TimingSettings(args.warmup_s, args.min_iters, args.duration_s).describe(),
        "maps": [run_map(kind, args) for kind in maps],
    }
    write_text_atomic(args.out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    write_text_atomic(args.out, to_markdown(record))
    print(to_markdown(record))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
