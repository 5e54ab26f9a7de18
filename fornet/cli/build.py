"""``fornet build`` (alias ``fornet-build``): build a TensorRT plan from an exported ONNX file, on the target.

Example (Jetson Orin, JetPack 6)::

    fornet build-plugin
    fornet build --model export/fornet_fp16.onnx --timing-cache ~/.cache/fornet/orin.cache
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fornet.cli.command import Command
from fornet.export.tensorrt.build import build_engine
from fornet.export.tensorrt.onnx_summary import inspect_onnx
from fornet.export.tensorrt.options import BuildOptions, engine_build_command, trtexec_build_command
from fornet.options import add_options, option, options_from_args
from fornet.runtime.tensorrt.plan_metadata import metadata_path


@dataclass(frozen=True)
class BuildTarget:
    """Which ONNX file to build from, where the plan goes, and whether to only print the commands."""

    model: Path = option(flag="--model", aliases=("--onnx",), parse=Path, required=True, metavar="PATH",
                         help="the exported ONNX file to build from (--onnx is another name of --model)")
    out: Path | None = option(None, flag="--out", parse=Path, metavar="PLAN", default_text="the ONNX path with .plan",
                              help="output plan")
    print_commands: bool = option(False, flag="--print-commands",
                                  help="only print this fornet-build command and its trtexec equivalent (no TensorRT "
                                       "needed: run it on the development machine, the printed commands on the "
                                       "target)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The build target and every :class:`BuildOptions` flag."""
    add_options(parser, BuildTarget)
    add_options(parser, BuildOptions)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Build the plan, or print the commands that build it."""
    target = options_from_args(BuildTarget, args)
    options = options_from_args(BuildOptions, args)
    if target.print_commands:
        print(engine_build_command(target.model, target.out, options))
        print(trtexec_build_command(target.model, target.out, options))
        if inspect_onnx(target.model).gate_function:
            print("# note: trtexec before TensorRT 10.7 expands the model-local function fornet.TopKGate instead "
                  "of using the plugin (and its TopK fails for k > 3840): give it a copy without the function "
                  "(fornet.export.onnx_function.strip_gate_function); fornet-build drops it by itself")
        return 0
    plan = build_engine(target.model, target.out, options)
    print(f"wrote {plan} and {metadata_path(plan)}")
    return 0


COMMAND = Command(
    name="build",
    alias="fornet-build",
    summary="build a TensorRT plan from an exported ONNX file (on the target device)",
    description="Build a strongly typed TensorRT engine (plan) from fornet.onnx, fornet_fp16.onnx or "
                "fornet_int8.onnx; the precision comes from the ONNX file. Writes the plan and <plan>.json "
                "(TensorRT version, GPU, precision, shapes, options, plugin and ONNX sha256). Run it on the "
                "device that will run the engine: plans are tied to the GPU and the TensorRT version.",
    add_arguments=add_arguments,
    run=run,
    epilog="Needs TensorRT's Python bindings and a CUDA GPU. A graph with the TopKGate node needs "
           "libfornet_plugins.so: build it first with fornet-build-plugin.",
)
main = COMMAND.alias_main
