"""``fornet bench`` (alias ``fornet-bench``): speed, mIoU and parity of a TensorRT plan or ONNX file.

See :data:`EXAMPLES` (printed by ``--help``) and :mod:`fornet.runtime.bench.runner` for what each scope includes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from fornet.atomic import check_output_dir, check_output_file
from fornet.cli.command import Command
from fornet.cli.triton_bench import TRITON, TritonBenchOptions, run_triton_bench
from fornet.options import add_options, option, option_groups, options_from_args
from fornet.runtime.bench.report import render_markdown, write_json, write_report
from fornet.runtime.bench.runner import ACCURACY, MODEL, OUTPUT, REFERENCE, BenchOptions, run_benchmark
from fornet.runtime.bench.timing import TIMING, TimingSettings

EXAMPLES = """examples:
  fornet-bench --engine export/fornet.plan --report bench/
  fornet-bench --engine export/fornet.onnx --ckpt run/best.pth --device cpu --threads 2 --json bench.json
  fornet-bench --engine export/fornet.plan --ckpt run/best.pth --data cityscapes --limit 100 \\
      --save-predictions preds/ --report bench/
"""


@dataclass(frozen=True)
class BenchOutputs:
    """Where the record and the report go (besides the summary printed on stdout)."""

    json: Path | None = option(None, flag="--json", parse=Path, metavar="OUT", group=OUTPUT,
                               help="write the full record as JSON")
    report: Path | None = option(None, flag="--report", parse=Path, metavar="DIR", group=OUTPUT,
                                 help="write report.json, summary.md, latency/IoU plots and overlays into DIR")


@dataclass(frozen=True)
class VideoBench:
    """The video pipeline timed next to the segmenter (:mod:`fornet.runtime.video.bench`)."""

    video: Path | None = option(None, flag="--video", parse=Path, metavar="FILE", group=TIMING,
                                help="also time the video pipeline (decode + segment + overlay + H.264) on FILE "
                                     "next to the segmenter's end-to-end FPS on the same frames")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every :class:`BenchOptions` (and :class:`TimingSettings`) flag, the outputs, Triton and ``--video``."""
    groups = option_groups(parser, MODEL, TIMING, REFERENCE, ACCURACY, OUTPUT, TRITON)
    for options in (BenchOptions, TimingSettings, BenchOutputs, TritonBenchOptions, VideoBench):
        add_options(parser, options, groups)


def video_bench(options: BenchOptions, video: Path) -> str:
    """Pipeline FPS next to the segmenter's end-to-end FPS on the frames of ``video``."""
    from fornet.runtime.segmenter import Segmenter
    from fornet.runtime.video.bench import compare_file_pipeline
    from fornet.runtime.video.errors import SourceError
    from fornet.runtime.video.uri import parse_source

    spec = parse_source(str(video))
    if spec.kind != "video":
        raise SourceError(f"--video takes a video file, not a {spec.kind} input; pass e.g. clip.mp4")
    with Segmenter(options.engine, options.backend, options.device, sidecar=options.sidecar,
                   threads=options.threads, plugin=options.plugin, cuda_graph=options.cuda_graph,
                   gpu_prepost=options.gpu_prepost) as seg:
        return compare_file_pipeline(seg, spec.location).format()


def bench_options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The :class:`BenchOptions` the parsed flags describe (progress bars only on a terminal)."""
    options = options_from_args(BenchOptions, args, timing=options_from_args(TimingSettings, args))
    return replace(options, progress=options.progress and sys.stderr.isatty())


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Check the output paths, benchmark, print the summary and write the requested record and report."""
    served = options_from_args(TritonBenchOptions, args)
    if served.triton is not None:
        return run_triton_bench(served, args)
    outputs = options_from_args(BenchOutputs, args)
    if outputs.json is not None:
        check_output_file(outputs.json, "--json")
    if outputs.report is not None:
        check_output_dir(outputs.report, "--report")
    options = bench_options_from_args(args)
    result = run_benchmark(options, command=shlex.join(["fornet-bench", *argv]))
    print(render_markdown(result.record, []))
    video = options_from_args(VideoBench, args).video
    if video is not None:
        print(video_bench(options, video))
    if outputs.json is not None:
        print(f"wrote {write_json(outputs.json, result.record)}")
    if outputs.report is not None:
        for path in write_report(outputs.report, result):
            print(f"wrote {path}")
    return 0


COMMAND = Command(
    name="bench",
    alias="fornet-bench",
    summary="speed, mIoU and parity of a TensorRT plan or ONNX file (optionally against PyTorch)",
    description="Benchmark an exported FoR-Net (TensorRT plan or ONNX file): throughput and latency in three "
                "labelled scopes (engine compute / engine + host-device copies / end to end with pre- and "
                "post-processing), optionally against the PyTorch checkpoint timed in the same run, and mIoU "
                "plus parity on Cityscapes-layout data.",
    add_arguments=add_arguments,
    run=run,
    epilog=EXAMPLES,
)
main = COMMAND.alias_main
