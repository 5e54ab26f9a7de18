"""The device check's video step: ``fornet bench --video`` on a generated 1024x2048 H.264 clip.

The engine is the PyTorch backend on the GPU (``--device cuda``, FP16 autocast) with a seeded,
untrained ``lite`` checkpoint at 512x1024 (speed does not depend on the weights). In one run it
records:

* engine-only FPS: the model alone on a preprocessed frame (the bench's "engine compute" scope);
* segmenter FPS: frame -> labels, one after another, on the decoded frames in memory;
* pipeline FPS: the video pipeline from the file to an overlay H.264 file (decode, segment, overlay,
  encode overlapped) and its ratio to the engine-only and segmenter FPS;
* the last pipeline round's per-stage times (CUDA event times with the GPU pre/post kernels), frame age
  (median, p90, p99), which reader decoded the clip and whether the frames stayed on the GPU (NVDEC
  into the kernels), and the issue's targets: pipeline >= 0.9 x engine-only, p99 frame age <= two
  periods of a 30 FPS source, pre + post + overlay <= 10% of the frame's time.

    python benchmarks/video_device_step.py --out build/device-check/video

Writes ``results.json`` and ``results.md`` to ``--out``; the clip and checkpoint are made there once.
``--device cpu --precision fp32`` and smaller sizes run it anywhere (the tests do).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.options import hw_arg


def prepare(out: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The seeded checkpoint and the generated clip in ``out`` (made once per size)."""
    from fornet.model import build_model, save_checkpoint
    from fornet.runtime.video.synthetic import write_pan_video

    checkpoint = out / f"{args.variant}.pth"
    if not checkpoint.is_file():
        import torch

        torch.manual_seed(0)
        save_checkpoint(checkpoint, build_model(args.variant).eval(), args.variant)
    clip = out / f"pan-{args.frame_size[0]}x{args.frame_size[1]}-{args.frames}.mp4"
    if not clip.is_file():
        write_pan_video(clip, args.frame_size, args.frames, fps=30, seed=1)
    return checkpoint, clip


def measure_step(checkpoint: Path, clip: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Engine-only, segmenter and pipeline FPS of one run, with the pipeline's report."""
    from fornet.runtime.bench.runner import make_frames, scope_candidate
    from fornet.runtime.bench.timing import TimingSettings, measure
    from fornet.runtime.model_spec import ModelSpec
    from fornet.runtime.segmenter import Segmenter
    from fornet.runtime.video.bench import compare_file_pipeline

    spec = ModelSpec(checkpoint, backend="torch", device=args.device, precision=args.model_precision,
                     input_size=tuple(args.input_size))
    with Segmenter(spec) as segmenter:
        compute = scope_candidate(segmenter, make_frames(tuple(args.frame_size), 1)).scopes["compute"]
        assert callable(compute)
        engine = measure({"engine": compute}, TimingSettings(0.2, args.min_iters, args.duration_s))["engine"]
        video = compare_file_pipeline(segmenter, str(clip), rounds=args.rounds)
        backend = type(segmenter.backend).__name__
        gpu_prepost = segmenter.gpu_prepost
    engine_fps = 1000 / engine.median
    stages = video.report.stages
    readers = [source.backend for source in video.report.sources]
    model_ms = stages["pre"].median_ms + stages["infer"].median_ms + stages["post"].median_ms
    prepost_share = (stages["pre"].median_ms + stages["post"].median_ms) / model_ms if model_ms else 0.0
    p99_age = video.report.age.p99_ms or 0.0
    return {
        "backend": backend, "gpu_prepost": gpu_prepost, "stage_clock": video.report.stage_clock,
        "frames_on_device": gpu_prepost and readers == ["nvdec"],
        "engine_fps": engine_fps, "engine": asdict(engine.to_record()),
        "segmenter_fps": video.segmenter_fps, "pipeline_fps": video.pipeline_fps,
        "pipeline_over_engine": video.pipeline_fps / engine_fps, "pipeline_over_segmenter": video.ratio,
        "pipeline_rounds": list(video.pipeline_rounds), "segmenter_rounds": list(video.segmenter_rounds),
        "readers": readers, "stages_ms": {name: asdict(stage) for name, stage in stages.items()},
        "frame_age_ms": asdict(video.report.age), "frames": video.frames,
        # pre + post (the overlay is drawn by the post kernel) as a share of the frame's pre + infer + post
        "prepost_share": prepost_share,
        "targets": {"pipeline_over_engine >= 0.9": video.pipeline_fps / engine_fps >= 0.9,
                    "p99 frame age <= 2 periods of 30 FPS (66.7 ms)": p99_age <= 2000 / 30,
                    "GPU pre + post + overlay <= 10%": prepost_share <= 0.10},
    }


def to_markdown(record: dict[str, Any]) -> str:
    """The step's results."""
    result = record["result"]
    lines = [
        "# Video step: fornet bench --video on the device", "",
        f"- machine: {record['machine']}; date {record['date']}",
        f"- command: `{record['command']}`",
        f"- engine: PyTorch ({result['backend']}), {record['device']}, {record['precision']}, {record['variant']} at "
        f"{record['input_size'][0]}x{record['input_size'][1]}; clip {record['frame_size'][0]}x"
        f"{record['frame_size'][1]} H.264, {result['frames']} frames; reader {', '.join(result['readers'])}",
        f"- pre/post: {'GPU kernels' if result['gpu_prepost'] else 'CPU'} (stage times: {result['stage_clock']}); "
        f"frames stay on the GPU from the decoder: {'yes' if result['frames_on_device'] else 'no'}", "",
        "| engine-only FPS | segmenter FPS | pipeline FPS | pipeline / engine | pipeline / segmenter | "
        "frame age median / p90 / p99 ms | pre + post share |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {result['engine_fps']:.1f} | {result['segmenter_fps']:.1f} | {result['pipeline_fps']:.1f} | "
        f"{result['pipeline_over_engine']:.2f} | {result['pipeline_over_segmenter']:.2f} | "
        f"{result['frame_age_ms']['median_ms']:.1f} / {result['frame_age_ms']['p90_ms']:.1f} / "
        f"{result['frame_age_ms']['p99_ms']:.1f} | {100 * result['prepost_share']:.1f}% |", "",
        "| stage | median ms | p90 ms |", "| --- | --- | --- |",
        *(f"| {name} | {stage['median_ms']:.2f} | {stage['p90_ms']:.2f} |"
          for name, stage in result["stages_ms"].items()), "",
        "| target (issue: GPU machine, lite, 1024x2048) | met |", "| --- | --- |",
        *(f"| {target} | {'yes' if met else 'no'} |" for target, met in result["targets"].items()),
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The step's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where results.json/.md go")
    parser.add_argument("--device", default="cuda", help="where the model runs (default: cuda)")
    parser.add_argument("--precision", dest="model_precision", default="fp16", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--variant", default="lite")
    parser.add_argument("--frame-size", type=hw_arg, default=(1024, 2048), metavar="HxW")
    parser.add_argument("--input-size", type=hw_arg, default=(512, 1024), metavar="HxW")
    parser.add_argument("--frames", type=int, default=90, help="frames in the clip (default: 90)")
    parser.add_argument("--rounds", type=int, default=2, help="pipeline rounds (default: 2)")
    parser.add_argument("--min-iters", type=int, default=20, metavar="N")
    parser.add_argument("--duration-s", type=float, default=2.0, metavar="S")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Prepare, measure and write the step's results."""
    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    out = ensure_writable_dir(args.out)
    checkpoint, clip = prepare(out, args)
    record = {
        "command": shlex.join(["python", "benchmarks/video_device_step.py", *arguments]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node() or 'unknown'} ({platform.machine()}, {platform.platform()})",
        "device": args.device, "precision": args.model_precision, "variant": args.variant,
        "frame_size": list(args.frame_size), "input_size": list(args.input_size),
        "result": measure_step(checkpoint, clip, args),
    }
    write_text_atomic(out / "results.json", json.dumps(record, indent=2) + "\n")
    markdown = to_markdown(record)
    write_text_atomic(out / "results.md", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
