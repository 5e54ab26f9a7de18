"""Video pipeline measurements on this machine (CPU, ONNX Runtime, untrained ``lite``).

Four measurements, each printed and written to ``--out`` (Markdown) and ``--json``:

1. **file -> overlay MP4**: pipeline FPS vs the Segmenter's end-to-end FPS alone, same frames, same
   run, interleaved rounds (:func:`fornet.runtime.video.bench.compare_file_pipeline`). Target >= 85%.
2. **live source**: a live 30 FPS GStreamer test camera (``gst://videotestsrc is-live=true ...``,
   newest-frame policy) through the pipeline to an overlay MP4; median frame age (capture ->
   result rendered and encoded) vs the median segmentation latency (pre + infer + post). Target
   <= 1.5x. Skipped (and said so) when GStreamer is not reachable.
3. **soak**: ``--soak-frames`` (default 10,000) frames of a tiny video (``--soak-size``) through the
   pipeline to an overlay MP4 and JSON lines; resident memory and thread counts every 500 frames.
   Target: RSS growth < 5% after the first 1,000 frames, constant thread count.
4. **four sources batched vs one**: the same file as 1 and as 4 sources (``--sources-size``), with a
   dynamic-batch export; aggregate FPS with batch 4 and with batch 1 (four engine calls per round).

    python benchmarks/video_bench.py --work build/video-bench --out benchmarks/video_results.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.options import hw_arg


def export_lite(folder: Path, size: tuple[int, int], dynamic: bool = False) -> Path:
    """A seeded, untrained lite FoR-Net exported to ONNX at ``size`` (reused when present)."""
    from fornet.export import ExportOptions, export_onnx
    from fornet.model import build_model, save_checkpoint

    onnx_path = folder / "fornet.onnx"
    if not onnx_path.is_file():
        import torch

        ensure_writable_dir(folder)
        torch.manual_seed(0)
        save_checkpoint(folder / "lite.pth", build_model("lite").eval(), "lite")
        export_onnx(folder / "lite.pth", folder, ExportOptions(input_size=size, dynamic_batch=dynamic, batch=1,
                                                               verify=False, progress=False))
    return onnx_path


def clip(folder: Path, size: tuple[int, int], frames: int) -> Path:
    """A generated H.264 pan over a street scene (reused when present)."""
    from fornet.runtime.video.synthetic import write_pan_video

    path = folder / f"pan_{size[0]}x{size[1]}_{frames}.mp4"
    if not path.is_file():
        write_pan_video(path, size, frames)
    return path


def bench_file(work: Path, size: tuple[int, int], threads: int | None, rounds: int) -> dict[str, Any]:
    from fornet.runtime import Segmenter
    from fornet.runtime.video.bench import compare_file_pipeline

    model = export_lite(work / f"lite_{size[0]}x{size[1]}", size)
    with Segmenter(model, device="cpu", threads=threads) as seg:
        result = compare_file_pipeline(seg, str(clip(work, size, 100)), rounds=rounds)
    print(result.format())
    return {"frames": result.frames, "pipeline_fps": result.pipeline_fps, "segmenter_fps": result.segmenter_fps,
            "ratio": result.ratio, "pipeline_rounds": result.pipeline_rounds,
            "segmenter_rounds": result.segmenter_rounds}


def bench_live(work: Path, size: tuple[int, int], threads: int | None, seconds: float) -> dict[str, Any]:
    from fornet.runtime import Segmenter
    from fornet.runtime.video import VideoFileSink, VideoPipeline, VideoSource
    from fornet.runtime.video.gst import gst_available

    if not gst_available():
        return {"skipped": "GStreamer's Python bindings are not reachable (make system-deps)"}
    h, w = size
    camera = (f"gst://videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate=30/1 ! "
              "videoconvert ! video/x-raw,format=BGR ! appsink name=sink max-buffers=1 drop=true sync=false")
    model = export_lite(work / f"lite_{h}x{w}", size)
    with Segmenter(model, device="cpu", threads=threads) as seg:
        seg(__import__("numpy").zeros((h, w, 3), "uint8"))
        pipeline = VideoPipeline(seg, [VideoSource(camera)], [VideoFileSink(work / "live.mp4", 30)],
                                 render="overlay", duration_s=seconds)
        ages, latencies = [], []
        for result in pipeline:
            ages.append(result.age_s)
            latencies.append(result.times["pre"] + result.times["infer"] + result.times["post"])
    report = pipeline.report()
    warm = slice(5, None)  # the first frames include the camera's start-up
    age, latency = statistics.median(ages[warm]) * 1000, statistics.median(latencies[warm]) * 1000
    print(f"live camera 30 FPS: median frame age {age:.1f} ms, median segmentation latency {latency:.1f} ms "
          f"({age / latency:.2f}x); {report.fps:.1f} FPS, dropped {report.sources[0].dropped} of "
          f"{report.sources[0].frames_read}")
    return {"frames": report.frames, "fps": report.fps, "median_age_ms": age, "median_latency_ms": latency,
            "ratio": age / latency, "p90_age_ms": report.age.p90_ms, "dropped": report.sources[0].dropped,
            "read": report.sources[0].frames_read}


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_soak(work: Path, size: tuple[int, int], frames: int, threads: int | None) -> dict[str, Any]:
    from fornet.runtime import Segmenter
    from fornet.runtime.video import JsonLinesSink, VideoFileSink, VideoPipeline, VideoSource

    video = clip(work, size, frames)
    model = export_lite(work / f"lite_{size[0]}x{size[1]}", size)
    samples: list[dict[str, float]] = []
    start = time.perf_counter()
    with Segmenter(model, device="cpu", threads=threads) as seg:
        sinks = [VideoFileSink(work / "soak.mp4"), JsonLinesSink(work / "soak.jsonl", {0: "soak"}, 19)]
        pipeline = VideoPipeline(seg, [VideoSource(str(video))], sinks, render="overlay")
        for result in pipeline:
            if result.frame.index % 500 == 0:
                samples.append({"frame": result.frame.index, "rss_mib": _rss_mib(),
                                "python_threads": threading.active_count(),
                                "os_threads": len(os.listdir("/proc/self/task"))})
    seconds = time.perf_counter() - start
    warm = next(s for s in samples if s["frame"] >= 1000)
    final = samples[-1]
    growth = (final["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"]
    after = [s for s in samples if s["frame"] >= 1000]
    print(f"soak {frames} frames of {size[0]}x{size[1]} in {seconds:.0f} s: RSS {warm['rss_mib']:.1f} -> "
          f"{final['rss_mib']:.1f} MiB ({100 * growth:+.2f}%), Python threads "
          f"{sorted({s['python_threads'] for s in after})}, OS threads {sorted({s['os_threads'] for s in after})}")
    return {"frames": frames, "seconds": seconds, "rss_growth": growth, "samples": samples}


def bench_sources(work: Path, size: tuple[int, int], threads: int | None, rounds: int) -> dict[str, Any]:
    from fornet.runtime import Segmenter
    from fornet.runtime.video import VideoPipeline, VideoSource

    model = export_lite(work / f"lite_{size[0]}x{size[1]}_dynamic", size, dynamic=True)
    video = str(clip(work, size, 60))
    cases = {"1 source": (1, 1), "4 sources, batch 4": (4, 4), "4 sources, batch 1": (4, 1)}
    fps: dict[str, list[float]] = {name: [] for name in cases}
    with Segmenter(model, device="cpu", threads=threads) as seg:
        for _ in range(rounds):
            for name, (count, batch) in cases.items():
                start = time.perf_counter()
                pipeline = VideoPipeline(seg, [VideoSource(video, i) for i in range(count)], render="overlay",
                                         batch=batch)
                frames = sum(1 for _ in pipeline)
                fps[name].append(frames / (time.perf_counter() - start))
    result = {name: {"median_fps": statistics.median(v), "rounds": v} for name, v in fps.items()}
    print("; ".join(f"{name}: {r['median_fps']:.1f} FPS" for name, r in result.items()))
    return result


def _values(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def render_markdown(record: dict[str, Any]) -> str:
    f, live, soak, src = record["file"], record["live"], record["soak"], record["sources"]
    lines = [
        "# Video pipeline results", "",
        f"Machine: {record['machine']}. Backend: ONNX Runtime on the CPU, untrained `lite` (seeded), threads "
        f"{record['threads'] or 'default'}. Generated street-scene pans encoded to H.264 (libx264).", "",
        f"Command: `{record['command']}`", "",
        "| measurement | result | target |", "| --- | --- | --- |",
        f"| file -> overlay MP4, {record['size']} ({f['frames']} frames, median of {len(f['pipeline_rounds'])} "
        f"rounds) | pipeline {f['pipeline_fps']:.1f} FPS (rounds {_values(f['pipeline_rounds'])}) vs "
        f"Segmenter alone {f['segmenter_fps']:.1f} FPS (rounds {_values(f['segmenter_rounds'])}): "
        f"**{100 * f['ratio']:.0f}%** | >= 85% |",
    ]
    if "skipped" in live:
        lines.append(f"| live source | skipped: {live['skipped']} | <= 1.5x |")
    else:
        lines.append(f"| live 30 FPS camera (GStreamer test source), {record['size']}, newest frame | median age "
                     f"{live['median_age_ms']:.1f} ms (p90 {live['p90_age_ms']:.1f}) vs segmentation latency "
                     f"{live['median_latency_ms']:.1f} ms: **{live['ratio']:.2f}x**; {live['fps']:.1f} FPS, "
                     f"{live['dropped']} of {live['read']} frames dropped | <= 1.5x |")
    after = [s for s in soak["samples"] if s["frame"] >= 1000]
    lines.append(f"| soak: {soak['frames']} frames at {record['soak_size']} (tiny, to fit the run) -> overlay MP4 "
                 f"+ JSON lines, {soak['seconds']:.0f} s | RSS growth after frame 1,000: "
                 f"**{100 * soak['rss_growth']:+.2f}%** ({after[0]['rss_mib']:.1f} -> {after[-1]['rss_mib']:.1f} MiB); "
                 f"Python threads {sorted({s['python_threads'] for s in after})}, OS threads "
                 f"{sorted({s['os_threads'] for s in after})} | < 5%, constant |")
    cases = "; ".join(f"{name}: {r['median_fps']:.1f}" for name, r in src.items())
    lines.append(f"| 4 sources vs 1, {record['sources_size']} (60 frames each), dynamic-batch export, aggregate "
                 f"FPS | {cases} | batching helps |")
    lines += ["", "Notes:", "",
              "- Segmenter alone runs `segmenter(frame)` in a plain loop on the main thread; the pipeline runs the "
              "same calls on its segmentation thread while other threads decode, render and encode. Where the "
              "ratio exceeds 100% on this 2-core machine the cause was not isolated (ONNX Runtime's thread pool "
              "scheduling is the likely one): read it as \"no loss from decoding and encoding\", not as a gain.",
              "- Frame age runs from the moment a frame is read to its result being rendered and encoded; the "
              "newest-frame policy drops what the segmenter cannot take, so the age stays near one segmentation "
              "plus the wait for the next camera frame.",
              "- OS thread counts include FFmpeg's and libx264's own worker threads, which come and go with the "
              "codecs' frame threading: they stay in a fixed band and do not grow; Python threads are constant.",
              "- Four sources on two CPU cores: four decoders compete with inference, so four sources together "
              "are slower than one alone; batching the four into one engine call beats four batch-1 calls. GPU "
              "numbers (NVDEC decoding, TensorRT batches) are not measured here.",
              "", "RSS and thread samples every 500 frames: `benchmarks/video_results.json` (this run's `--json` "
              "record).", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("build/video-bench"), help="models and clips")
    parser.add_argument("--size", type=hw_arg, default=(256, 512), metavar="HxW", help="frame and network size")
    parser.add_argument("--sources-size", type=hw_arg, default=(128, 256), metavar="HxW")
    parser.add_argument("--soak-size", type=hw_arg, default=(64, 128), metavar="HxW")
    parser.add_argument("--soak-frames", type=int, default=10_000)
    parser.add_argument("--live-s", type=float, default=20.0, help="seconds of the live measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: its own)")
    parser.add_argument("--out", type=Path, help="Markdown results file")
    parser.add_argument("--json", type=Path, help="JSON record")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    work = ensure_writable_dir(args.work)
    record: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/video_bench.py", *arguments]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} "
                   f"{platform.release()}, Python {platform.python_version()}",
        "size": f"{args.size[0]}x{args.size[1]}", "soak_size": f"{args.soak_size[0]}x{args.soak_size[1]}",
        "sources_size": f"{args.sources_size[0]}x{args.sources_size[1]}",
        "threads": args.threads,
    }
    record["file"] = bench_file(work, args.size, args.threads, args.rounds)
    record["live"] = bench_live(work, args.size, args.threads, args.live_s)
    record["sources"] = bench_sources(work, args.sources_size, args.threads, args.rounds)
    record["soak"] = bench_soak(work, args.soak_size, args.soak_frames, args.threads)
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(record, indent=2) + "\n")
    if args.out is not None:
        write_text_atomic(args.out, render_markdown(record))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
