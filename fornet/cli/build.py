"""``fornet-build``: build a TensorRT plan from an exported ONNX file, on the target device.

Example (Jetson Orin, JetPack 6)::

    fornet-build-plugin
    fornet-build --onnx export/fornet_fp16.onnx --timing-cache ~/.cache/fornet/orin.cache
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fornet.cli_utils import friendly_errors
from fornet.export.tensorrt.options import DEFAULT_BATCH_RANGE, HARDWARE_COMPAT_LEVELS, BuildOptions


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fornet-build`` (its flags map one to one onto :class:`BuildOptions`)."""
    parser = argparse.ArgumentParser(
        prog="fornet-build",
        description="Build a strongly typed TensorRT engine (plan) from fornet.onnx, fornet_fp16.onnx or "
        "fornet_int8.onnx; the precision comes from the ONNX file. Writes the plan and <plan>.json "
        "(TensorRT version, GPU, precision, shapes, options, plugin and ONNX sha256). Run it on the "
        "device that will run the engine: plans are tied to the GPU and the TensorRT version.",
        epilog="Needs TensorRT's Python bindings and a CUDA GPU. A graph with the TopKGate node needs "
        "libfornet_plugins.so: build it first with fornet-build-plugin.",
    )
    parser.add_argument("--onnx", type=Path, required=True, metavar="FILE", help="exported ONNX file")
    parser.add_argument("--out", type=Path, metavar="PLAN", help="output plan (default: the ONNX path with .plan)")
    parser.add_argument("--plugin", type=Path, metavar="LIB",
                        help="plugin library (default: $FORNET_PLUGIN_LIB, build/plugins/, /usr/local/lib, ...; "
                        "loaded only when the graph has a TopKGate node)")
    tuning = parser.add_argument_group("builder")
    tuning.add_argument("--workspace", type=int, metavar="MiB", help="workspace memory pool limit in MiB")
    tuning.add_argument("--opt-level", type=int, metavar="N", choices=range(6),
                        help="builder optimisation level 0-5 (TensorRT default: 3; higher builds slower)")
    tuning.add_argument("--timing-cache", type=Path, metavar="FILE",
                        help="persistent timing cache: read if present, updated after the build")
    tuning.add_argument("--verbose", action="store_true", help="print TensorRT's verbose log")
    parser.add_argument("--print-commands", action="store_true",
                        help="only print this fornet-build command and its trtexec equivalent (no TensorRT "
                        "needed: run it on the development machine, the printed commands on the target)")
    shapes = parser.add_argument_group("optimisation profile (ONNX exported with --dynamic-batch)")
    for name, default in zip(("min", "opt", "max"), DEFAULT_BATCH_RANGE, strict=True):
        shapes.add_argument(f"--{name}-batch", type=int, metavar="N", help=f"{name} batch (default: {default})")
    compat = parser.add_argument_group("compatibility")
    compat.add_argument("--version-compatible", action="store_true",
                        help="version-compatible plan (a 10.x plan also runs on later TensorRT runtimes)")
    compat.add_argument("--hardware-compat", choices=HARDWARE_COMPAT_LEVELS, default="none",
                        help="ampere+: one plan for every Ampere or newer GPU (not Jetson-specific tuning)")
    compat.add_argument("--legacy-int8-cache", type=Path, metavar="FILE",
                        help="TensorRT 10.x only: implicit INT8 of fornet.onnx from a TRT-<ver>-EntropyCalibration2 "
                        "cache (TensorRT 11 removed it: build fornet_int8.onnx instead)")
    return parser


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """The :class:`BuildOptions` that parsed arguments describe."""
    return BuildOptions(
        plugin=args.plugin,
        workspace_mib=args.workspace,
        opt_level=args.opt_level,
        timing_cache=args.timing_cache,
        min_batch=args.min_batch,
        opt_batch=args.opt_batch,
        max_batch=args.max_batch,
        version_compatible=args.version_compatible,
        hardware_compat=args.hardware_compat,
        legacy_int8_cache=args.legacy_int8_cache,
        verbose=args.verbose,
    )


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fornet-build``."""
    from dataclasses import asdict

    from fornet.export.tensorrt.build import build_engine
    from fornet.export.tensorrt.options import engine_build_command, trtexec_build_command
    from fornet.runtime.tensorrt.plan_metadata import metadata_path

    args = build_parser().parse_args(argv)
    options = asdict(options_from_args(args))
    if args.print_commands:
        from fornet.export.tensorrt.onnx_summary import inspect_onnx

        print(engine_build_command(args.onnx, args.out, **options))
        print(trtexec_build_command(args.onnx, args.out, **options))
        if inspect_onnx(args.onnx).gate_function:
            print("# note: trtexec before TensorRT 10.7 expands the model-local function fornet.TopKGate instead "
                  "of using the plugin (and its TopK fails for k > 3840): give it a copy without the function "
                  "(fornet.export.onnx_function.strip_gate_function); fornet-build drops it by itself")
        return 0
    plan = build_engine(args.onnx, args.out, **options)
    print(f"wrote {plan} and {metadata_path(plan)}")
    return 0
