"""Side-by-side CPU comparison: PyTorch eager vs ONNX Runtime FP32 (vs ONNX Runtime INT8), per variant.

For each variant (default ``r18`` and ``lite``) at one network size (default 512x1024), the script
saves a seeded checkpoint and exports ``fornet.onnx`` into ``--work/<variant>/`` (reused when
present), then times, interleaved in one run (:func:`fornet.runtime.bench.timing.measure`):

* engine compute: the model on a preprocessed batch (on the CPU this is also the "copies" scope);
* end to end: uint8 BGR frames (default 1024x2048) -> labels at the frame size through
  :class:`fornet.runtime.Segmenter`, with the pre / infer / post split.

ONNX Runtime INT8 joins when ``--work/<variant>/fornet_int8.onnx`` exists (``fornet-export --int8``
writes it there when pointed at the same folder); otherwise it is skipped and the results say so.
The dense multiply-accumulate count of the convolutions is reported to put the latencies in
context. Writes a Markdown table file and a JSON record.

    python benchmarks/cpu_backends.py --work build/cpu-bench --out build/cpu-bench/cpu_results.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.options import hw_arg

CANDIDATES = ("pytorch-eager", "onnxruntime-fp32", "onnxruntime-int8")


def prepare_variant(work: Path, variant: str, input_size: tuple[int, int]) -> dict[str, Path | None]:
    """Checkpoint and FP32 ONNX of ``variant`` in ``work/variant`` (created once), and the INT8 file if any."""
    from fornet.export import ExportOptions, export_onnx
    from fornet.model import build_model, save_checkpoint
    from fornet.runtime.model_io import ModelSidecar

    folder = ensure_writable_dir(work / variant)
    checkpoint = folder / "model.pth"
    if not checkpoint.is_file():
        import torch

        torch.manual_seed(0)
        save_checkpoint(checkpoint, build_model(variant).eval(), variant)
    onnx_path = folder / "fornet.onnx"
    sidecar = ModelSidecar.load(ModelSidecar.path_for(onnx_path)) if onnx_path.is_file() else None
    if sidecar is None or sidecar.input.size != tuple(input_size):
        export_onnx(checkpoint, folder, ExportOptions(input_size=input_size, gate="plugin", verify=False,
                                                            progress=False))
    int8 = folder / "fornet_int8.onnx"
    return {"checkpoint": checkpoint, "fp32": onnx_path, "int8": int8 if int8.is_file() else None}


def conv_gmacs(checkpoint: Path, input_size: tuple[int, int]) -> float:
    """Dense multiply-accumulates (G) of every convolution in one forward pass at ``input_size``."""
    import torch

    from fornet.model import load_model

    model = load_model(checkpoint)
    total = 0

    def count(module: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, *input_size))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def open_candidates(files: dict[str, Path | None], input_size: tuple[int, int], threads: int) -> dict[str, Any]:
    """The segmenters to compare (INT8 only when its file exists)."""
    from fornet.runtime import Segmenter

    assert files["checkpoint"] is not None and files["fp32"] is not None
    segmenters = {
        "pytorch-eager": Segmenter(files["checkpoint"], device="cpu", input_size=input_size, threads=threads),
        "onnxruntime-fp32": Segmenter(files["fp32"], device="cpu", threads=threads),
    }
    if files["int8"] is not None:
        own = files["int8"].with_name(files["int8"].name + ".json")
        segmenters["onnxruntime-int8"] = Segmenter(files["int8"], device="cpu", threads=threads,
                                                   sidecar=own if own.is_file() else files["fp32"].with_name(
                                                       "fornet.onnx.json"))
    return segmenters


def bench_variant(variant: str, files: dict[str, Path | None], args: argparse.Namespace) -> dict[str, Any]:
    """Time every candidate of one variant, interleaved; the variant's record."""
    from fornet.runtime.bench.runner import make_frames, scope_candidate, stage_summary
    from fornet.runtime.bench.timing import TimingSettings, measure

    settings = TimingSettings(args.warmup_s, args.min_iters, args.duration_s)
    checkpoint = files["checkpoint"]
    assert checkpoint is not None
    segmenters = open_candidates(files, args.input_size, args.threads)
    try:
        frames = make_frames(args.frame_size, 1)
        candidates = {}
        for name, seg in segmenters.items():
            candidate = scope_candidate(seg, frames)
            candidate.label = name
            candidates[name] = candidate
        load_before = os.getloadavg()[0]
        compute = measure({n: step for n, c in candidates.items() if callable(step := c.scopes["compute"])},
                          settings, progress=True, desc=f"{variant} compute")
        end_to_end = measure({n: step for n, c in candidates.items() if callable(step := c.scopes["end_to_end"])},
                             settings, progress=True, desc=f"{variant} end to end")
        load_after = os.getloadavg()[0]
    finally:
        for seg in segmenters.values():
            seg.close()
    return {
        "variant": variant, "gmacs": conv_gmacs(checkpoint, args.input_size),
        "int8": str(files["int8"]) if files["int8"] else None, "load_average": [load_before, load_after],
        "compute": {n: asdict(s.to_record()) for n, s in compute.items()},
        "end_to_end": {n: asdict(s.to_record()) for n, s in end_to_end.items()},
        "stages": {n: asdict(stage_summary(candidates[n], end_to_end[n])) for n in candidates},
    }


def _cell(stats: dict[str, Any]) -> str:
    return f"{stats['median_ms']:.0f} ({stats['p90_ms']:.0f} / {100 * stats['cv']:.1f}%)"


def to_markdown(record: dict[str, Any]) -> str:
    """The results tables."""
    env = record["environment"]
    lines = [
        "# CPU backends: PyTorch eager vs ONNX Runtime", "",
        f"- machine: {env['cpu']}, {env['cpus_usable']} CPUs usable, {env['platform']}, Python {env['python']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}",
        f"- threads: {record['threads']} (ONNX Runtime intra-op and torch.set_num_threads)",
        f"- date: {record['date']}; load average (1 min) at start {env['load_average'][0]:.2f}",
        f"- command: `{record['command']}`",
        f"- network input {record['input_size'][0]}x{record['input_size'][1]}, end-to-end frames "
        f"{record['frame_size'][0]}x{record['frame_size'][1]} uint8 BGR -> labels at frame size, batch 1",
        f"- timing: {record['timing']}, candidates interleaved; host perf_counter per synchronous call",
        "- cells: median ms (p90 ms / coefficient of variation)", "",
    ]
    for variant in record["variants"]:
        eager = variant["end_to_end"]["pytorch-eager"]["median_ms"]
        lines += [
            f"## {variant['variant']} ({variant['gmacs']:.1f} G multiply-accumulates per image, dense convolutions; "
            f"load average {variant['load_average'][0]:.2f} -> {variant['load_average'][1]:.2f})", "",
            "| backend | engine compute | end to end | img/s end to end | pre ms | infer ms | post ms "
            "| pre + post share | end-to-end speed-up vs eager |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, stats in variant["end_to_end"].items():
            stages = variant["stages"][name]
            lines.append(
                f"| {name} | {_cell(variant['compute'][name])} | {_cell(stats)} | {stats['throughput_img_s']:.2f} | "
                f"{stages['pre_ms']:.1f} | {stages['infer_ms']:.0f} | {stages['post_ms']:.1f} | "
                f"{100 * stages['prepost_share']:.1f}% | {eager / stats['median_ms']:.2f}x |")
        if variant["int8"] is None:
            lines.append("| onnxruntime-int8 | skipped: no fornet_int8.onnx in the work folder | | | | | | | |")
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The script's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("build/cpu-bench"), metavar="DIR",
                        help="checkpoints and exports per variant (default: build/cpu-bench)")
    parser.add_argument("--out", type=Path, default=Path("build/cpu-bench/cpu_results.md"), metavar="MD",
                        help="Markdown results (a .json record is written beside it)")
    parser.add_argument("--variants", default="r18,lite", help="comma-separated variants (default: r18,lite)")
    parser.add_argument("--input-size", type=hw_arg, default=(512, 1024), metavar="HxW",
                        help="network input size (default: 512x1024)")
    parser.add_argument("--frame-size", type=hw_arg, default=(1024, 2048), metavar="HxW",
                        help="end-to-end frame size (default: 1024x2048)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="CPU threads for every backend (default: the usable CPUs)")
    parser.add_argument("--warmup-s", type=float, default=0.2, metavar="S")
    parser.add_argument("--min-iters", type=int, default=10, metavar="N")
    parser.add_argument("--duration-s", type=float, default=3.0, metavar="S")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Prepare, time and write the results."""
    from fornet.runtime.bench.environment import ThreadSettings, collect_environment
    from fornet.runtime.bench.timing import TimingSettings

    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    files = {variant: prepare_variant(args.work, variant, args.input_size) for variant in variants}
    environment = asdict(collect_environment(ThreadSettings(requested=args.threads)))
    record = {
        "command": shlex.join(["python", "benchmarks/cpu_backends.py", *arguments]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "environment": environment, "threads": args.threads,
        "input_size": list(args.input_size), "frame_size": list(args.frame_size),
        "timing": TimingSettings(args.warmup_s, args.min_iters, args.duration_s).describe(),
        "variants": [bench_variant(variant, files[variant], args) for variant in variants],
    }
    markdown = to_markdown(record)
    write_text_atomic(args.out, markdown)
    write_text_atomic(args.out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    print(markdown)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
