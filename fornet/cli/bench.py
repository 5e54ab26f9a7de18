"""``fornet-bench``: speed in three labelled scopes, mIoU and parity of a TensorRT plan or ONNX file.

See :data:`EXAMPLES` (printed by ``--help``) and :mod:`fornet.runtime.bench.runner` for what each scope includes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from fornet.cli_utils import friendly_errors, hw_arg
from fornet.runtime.bench.report import render_markdown, write_json, write_report
from fornet.runtime.bench.runner import BenchOptions, run_benchmark
from fornet.runtime.bench.timing import DEFAULT_CV_WARNING, TimingSettings

EXAMPLES = """examples:
  fornet-bench --engine export/fornet.plan --report bench/
  fornet-bench --engine export/fornet.onnx --ckpt run/best.pth --device cpu --threads 2 --json bench.json
  fornet-bench --engine export/fornet.plan --ckpt run/best.pth --data cityscapes --limit 100 \\
      --save-predictions preds/ --report bench/
"""


def _device(text: str) -> int | str:
    if text == "cpu":
        return "cpu"
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a GPU index (0, 1, ...) or 'cpu', got {text!r}")


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive percentage, got {text!r}")
    return value / 100


def build_parser() -> argparse.ArgumentParser:
    """The ``fornet-bench`` argument parser."""
    defaults = TimingSettings()
    parser = argparse.ArgumentParser(
        prog="fornet-bench",
        description="Benchmark an exported FoR-Net (TensorRT plan or ONNX file): throughput and latency in three "
                    "labelled scopes (engine compute / engine + host-device copies / end to end with pre- and "
                    "post-processing), optionally against the PyTorch checkpoint timed in the same run, and mIoU "
                    "plus parity on Cityscapes-layout data.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument("--engine", required=True, type=Path, metavar="PATH", help="a .plan/.engine or .onnx file")
    model.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime"), default="auto",
                       help="force a backend (default: from the extension)")
    model.add_argument("--sidecar", type=Path, metavar="JSON",
                       help="the model's <model>.onnx.json, when not beside the engine")
    model.add_argument("--plugin", type=Path, metavar="LIB", help="TopKGate plugin library (default: searched)")
    model.add_argument("--device", type=_device, default=0, metavar="N|cpu",
                       help="GPU index, or cpu to keep ONNX Runtime and PyTorch on the CPU (default: 0)")
    model.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay the engine as a CUDA graph")
    model.add_argument("--cpu-prepost", action="store_true",
                       help="TensorRT: pre/post-process on the CPU instead of the CUDA kernels")
    timing = parser.add_argument_group("timing (per scope, trtexec's defaults)")
    timing.add_argument("--warmup-s", type=float, default=defaults.warmup_s, metavar="S",
                        help=f"warm-up time per candidate (default: {defaults.warmup_s})")
    timing.add_argument("--min-iters", type=int, default=defaults.min_iters, metavar="N",
                        help=f"at least N timed calls per candidate (default: {defaults.min_iters})")
    timing.add_argument("--duration-s", type=float, default=defaults.duration_s, metavar="S",
                        help=f"at least S seconds of timed calls per candidate (default: {defaults.duration_s})")
    timing.add_argument("--batch", type=int, default=1, metavar="N", help="images per call (default: 1)")
    timing.add_argument("--frame-size", type=hw_arg, default=(1024, 2048), metavar="HxW",
                        help="size of the end-to-end frames (default: 1024x2048, a Cityscapes camera frame)")
    timing.add_argument("--threads", type=int, metavar="N", help="CPU threads of ONNX Runtime and PyTorch")
    timing.add_argument("--cv-warn", type=_percent, default=DEFAULT_CV_WARNING, metavar="PCT",
                        help=f"warn above this coefficient of variation (default: {100 * DEFAULT_CV_WARNING:g})")
    timing.add_argument("--skip-speed", action="store_true", help="accuracy only (needs --data)")
    reference = parser.add_argument_group("PyTorch reference")
    reference.add_argument("--ckpt", type=Path, metavar="PTH",
                           help="checkpoint timed in the same scopes on the same frames (interleaved) and scored")
    reference.add_argument("--variant", help="architecture of a bare checkpoint state_dict")
    accuracy = parser.add_argument_group("accuracy")
    accuracy.add_argument("--data", type=Path, metavar="DIR", help="Cityscapes-layout folder (leftImg8bit/, gtFine/)")
    accuracy.add_argument("--split", default="val", help="split of --data (default: val)")
    accuracy.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    accuracy.add_argument("--save-predictions", type=Path, metavar="DIR",
                          help="write the engine's <stem>_pred_labelIds.png (for cityscapesscripts) into DIR")
    accuracy.add_argument("--boundary-width", type=int, default=3, metavar="PX",
                          help="width of the boundary band of the parity report (default: 3)")
    output = parser.add_argument_group("output")
    output.add_argument("--json", type=Path, metavar="OUT", help="write the full record as JSON")
    output.add_argument("--report", type=Path, metavar="DIR",
                        help="write report.json, summary.md, latency/IoU plots and overlays into DIR")
    output.add_argument("--overlays", type=int, default=3, metavar="N",
                        help="overlays with disagreement pixels in the report (default: 3)")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--video", metavar="FILE",
                        help="also time the video pipeline (decode + segment + overlay + H.264) on FILE next to the "
                             "segmenter's end-to-end FPS on the same frames (fornet.runtime.video.bench)")
    return parser


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The :class:`BenchOptions` the parsed flags describe."""
    return BenchOptions(
        engine=args.engine, backend=args.backend, sidecar=args.sidecar, plugin=args.plugin, device=args.device,
        cuda_graph=args.cuda_graph, gpu_prepost=not args.cpu_prepost, threads=args.threads,
        timing=TimingSettings(args.warmup_s, args.min_iters, args.duration_s), batch=args.batch,
        frame_size=args.frame_size, ckpt=args.ckpt, variant=args.variant, data=args.data, split=args.split,
        limit=args.limit, save_predictions=args.save_predictions, boundary_width=args.boundary_width,
        overlays=args.overlays, cv_warning=args.cv_warn, speed=not args.skip_speed,
        progress=not args.quiet and sys.stderr.isatty(),
    )


def _video_bench(args: argparse.Namespace) -> str:
    from fornet.runtime.segmenter import Segmenter
    from fornet.runtime.video.bench import compare_file_pipeline
    from fornet.runtime.video.errors import SourceError
    from fornet.runtime.video.uri import parse_source

    spec = parse_source(args.video)
    if spec.kind != "video":
        raise SourceError(f"--video takes a video file, not a {spec.kind} input; pass e.g. clip.mp4")
    with Segmenter(args.engine, args.backend, args.device, sidecar=args.sidecar, threads=args.threads,
                   plugin=args.plugin, cuda_graph=args.cuda_graph, gpu_prepost=not args.cpu_prepost) as seg:
        return compare_file_pipeline(seg, spec.location).format()


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fornet-bench``."""
    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    result = run_benchmark(options_from_args(args), command=shlex.join(["fornet-bench", *arguments]))
    print(render_markdown(result.record, []))
    if args.video is not None:
        print(_video_bench(args))
    if args.json is not None:
        print(f"wrote {write_json(args.json, result.record)}")
    if args.report is not None:
        for path in write_report(args.report, result):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
