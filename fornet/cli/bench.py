"""``fornet bench`` (alias ``fornet-bench``): speed, mIoU and parity of a model (plan, ONNX file, checkpoint).

See :data:`EXAMPLES` (printed by ``--help``) and :mod:`fornet.runtime.bench.runner` for what each scope includes.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from fornet.atomic import check_output_dir
from fornet.cli.command import Command
from fornet.cli.output import CommandOutput
from fornet.options import add_options, json_option, option, option_groups, options_from_args
from fornet.progress import progress_wanted
from fornet.runtime.bench.report import render_markdown, write_report
from fornet.runtime.bench.runner import ACCURACY, OUTPUT, REFERENCE, BenchOptions, run_benchmark
from fornet.runtime.bench.timing import TIMING, TimingSettings
from fornet.runtime.model_spec import MODEL, ModelSpec
from fornet.runtime.serving.bench import TRITON, TritonBenchOptions, bench_served_model
from fornet.runtime.video.bench import VideoBench, video_bench

EXAMPLES = """examples:
  fornet-bench --engine export/fornet.plan --report bench/
  fornet bench --model export/fornet.onnx --ckpt run/best.pth --device cpu --threads 2 --json bench.json
  fornet bench --model export/fornet.plan --ckpt run/best.pth --data cityscapes --limit 100 \\
      --save-predictions preds/ --report bench/
  fornet bench --model run/best.pth --input-size 512x1024 --device cuda:0 --precision fp16 --cuda-graph

--engine is another name of --model (the flag fornet-bench has always had).
"""


@dataclass(frozen=True)
class BenchOutputs:
    """Where the record and the report go (besides the summary printed on stdout)."""

    json: Path | None = json_option("the full benchmark record as JSON", OUTPUT)
    report: Path | None = option(None, flag="--report", parse=Path, metavar="DIR", group=OUTPUT,
                                 help="write report.json, summary.md, latency/IoU plots and overlays into DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags (``--engine`` an alias of ``--model``), the bench options, the outputs, Triton, ``--video``."""
    groups = option_groups(parser, MODEL, TIMING, REFERENCE, ACCURACY, OUTPUT, TRITON)
    add_options(parser, ModelSpec, groups, aliases={"path": ("--engine",)})
    for options in (BenchOptions, TimingSettings, BenchOutputs, TritonBenchOptions, VideoBench):
        add_options(parser, options, groups)


def bench_options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The :class:`BenchOptions` the parsed flags describe (progress bars only on a terminal)."""
    options = options_from_args(BenchOptions, args, model=options_from_args(ModelSpec, args),
                                timing=options_from_args(TimingSettings, args))
    return replace(options, progress=progress_wanted(options.progress))


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Check the output paths, benchmark, print the summary and write the requested record and report."""
    served = options_from_args(TritonBenchOptions, args)
    options = bench_options_from_args(args)
    if served.triton_url is not None:
        result = bench_served_model(served, options.model, options.frame_size)
        print(result.summary())
        return 0 if result.all_checked else 1
    outputs = options_from_args(BenchOutputs, args)
    output = CommandOutput(outputs.json)
    if outputs.report is not None:
        check_output_dir(outputs.report, "--report")
    result = run_benchmark(options, command=shlex.join(["fornet-bench", *argv]))
    output.say(render_markdown(result.record, []))
    video = options_from_args(VideoBench, args).video
    if video is not None:
        output.say(video_bench(options.model, video).format())
    output.record(result.record)
    if outputs.report is not None:
        for path in write_report(outputs.report, result):
            output.say(f"wrote {path}")
    return 0


COMMAND = Command(
    name="bench",
    alias="fornet-bench",
    summary="speed, mIoU and parity of a model: TensorRT plan, ONNX file or checkpoint (optionally against PyTorch)",
    description="Benchmark a FoR-Net model (TensorRT plan, ONNX file or checkpoint): throughput and latency in three "
                "labelled scopes (engine compute / engine + host-device copies / end to end with pre- and "
                "post-processing), optionally against the PyTorch checkpoint timed in the same run, and mIoU "
                "plus parity on Cityscapes-layout data.",
    add_arguments=add_arguments,
    run=run,
    epilog=EXAMPLES,
)
main = COMMAND.alias_main
