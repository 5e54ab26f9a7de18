"""``fornet export`` (alias ``fornet-export``): FoR-Net checkpoint -> verified ONNX (FP32, optional FP16) + sidecars.

The command parses the flags, calls :func:`fornet.export.api.export_onnx`, the TensorRT step
(:func:`fornet.export.tensorrt.deploy.build_or_describe_engines`) and the packages
(:func:`fornet.export.packages.write_packages`), and prints what each did.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fornet.cli.command import Command
from fornet.export.errors import ExportError
from fornet.export.int8.options import INT8, Int8Options
from fornet.export.options import GRAPH, PRECISION, PREPOST, VERIFICATION, ExportOptions, IOFormat
from fornet.export.packages import PackageOptions, check_package_targets, write_packages
from fornet.model.config import variant_option
from fornet.options import OptionGroup, add_options, option, option_groups, options_from_args
from fornet.progress import progress_wanted

if TYPE_CHECKING:
    from fornet.export.api import ExportResult

EXAMPLES = """examples:
  fornet export --model run/best.pth --input-size 1024x2048 --out export/
  fornet export --model model.pth --variant lite --fp16 --input raw --channel-order BGR --output labels
  fornet export --model model.pth --gate native --input-size 512x1024 --dynamic-batch
  fornet export --model model.pth --input-size 512x1024 --int8 --calib-data cityscapes/ --fallback-sensitive

--ckpt is another name of --model (fornet-export --ckpt model.pth --fp16 keeps working).
"""


MODEL = OptionGroup("model")
ENGINE = OptionGroup(
    "TensorRT engine",
    "after the ONNX files, the plan for the deployed precision (INT8, else FP16, else FP32) is built when TensorRT "
    "is importable; otherwise the command to run on the target is printed")


@dataclass(frozen=True)
class ExportTarget:
    """What to export and where (the flags beside :class:`ExportOptions`)."""

    model: Path = option(flag="--model", aliases=("--ckpt",), parse=Path, required=True, metavar="PATH",
                         group=MODEL, help="the checkpoint to export: a fornet checkpoint or a bare reference "
                                           "state_dict")
    variant: str | None = variant_option(MODEL)
    out: Path = option(Path("export"), flag="--out", parse=Path, metavar="DIR", default_text="./export",
                       group=GRAPH, help="output folder")
    int8: bool = option(False, flag="--int8", group=INT8, help="also calibrate and write the INT8 files")


@dataclass(frozen=True)
class EngineTarget:
    """The TensorRT plan built (or printed) after the ONNX files."""

    plugin: Path | None = option(None, flag="--plugin", parse=Path, metavar="LIB", group=ENGINE,
                                 default_text="searched", help="TensorRT: the TopKGate plugin library")
    require_engine: bool = option(False, flag="--require-engine", group=ENGINE,
                                  help="fail (exit 2) when no plan can be built here, instead of printing the "
                                       "build command")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the export options (model, graph, precision, pre/post, verification and INT8 groups)."""
    groups = option_groups(parser, MODEL, GRAPH, PRECISION, PREPOST, VERIFICATION, INT8)
    for options in (ExportOptions, IOFormat, ExportTarget, Int8Options):
        add_options(parser, options, groups)


def _int8_options(args: argparse.Namespace) -> Int8Options | None:
    if not options_from_args(ExportTarget, args).int8:
        if args.calib_data is not None:
            raise ExportError("--calib-data is an INT8 option; add --int8")
        return None
    if args.calib_data is None:
        raise ExportError("--int8 needs calibration images: add --calib-data DIR (a Cityscapes-layout folder, "
                          "e.g. one written by `fornet-data synth`)")
    return options_from_args(Int8Options, args)


def export_options_from_args(args: argparse.Namespace) -> ExportOptions:
    """The :class:`ExportOptions` that parsed :func:`add_export_arguments` flags describe (progress only on a
    terminal)."""
    options = options_from_args(ExportOptions, args, io=options_from_args(IOFormat, args), int8=_int8_options(args))
    return dataclasses.replace(options, progress=progress_wanted(options.progress))


class _StderrHandler(logging.Handler):
    """Writes records to ``sys.stderr`` as it is when the record is emitted (a command may be run
    several times in one process, each time with another stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


_INT8_LOG = _StderrHandler()
_INT8_LOG.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))


def _show_int8_log() -> None:
    """Print the INT8 step's log (input statistics, warnings) on stderr (unless the logger has handlers)."""
    logger = logging.getLogger("fornet.int8")
    if not logger.handlers:
        logger.addHandler(_INT8_LOG)
        logger.setLevel(logging.INFO)


def run_export(args: argparse.Namespace) -> ExportResult:
    """Export as the parsed flags say and print what was written."""
    from fornet.export.api import export_onnx  # torch
    from fornet.export.int8.tensorrt_qdq import TRT_INT8_NAME  # onnx

    options = export_options_from_args(args)
    if options.int8 is not None:
        _show_int8_log()
    target = options_from_args(ExportTarget, args)
    result = export_onnx(target.model, target.out, options, variant=target.variant)
    for line in result.recovered:
        print(line)
    print(f"Top-K k per ratio: {list(result.ks)}")
    how = ("standard ops (TensorRT's own TopK; no plugin needed)" if result.gate == "native" else
           "one fornet::TopKGate node (TensorRT plugin; model-local function elsewhere)")
    chosen = " (chosen by --gate auto)" if args.gate == "auto" else ""
    print(f"Top-K gate: {result.gate}{chosen}: {how}")
    for report in result.reports.values():
        print(f"verified {report.summary()}")
    int8 = result.int8
    written = [result.onnx_path, result.sidecar_path, result.fp16_path, result.fp16_sidecar_path]
    if int8 is not None:
        print("INT8 calibration " + ("reused from " + str(int8.ranges_path) if int8.reused_calibration
                                     else "written to " + str(int8.ranges_path)))
        if int8.gate is not None:
            print(int8.gate.summary())
        if int8.fallback:
            print(f"kept in FP32 by the fallback: {', '.join(int8.fallback)}")
        if int8.tensorrt_gate is not None:
            print(f"{TRT_INT8_NAME}: {int8.tensorrt_gate.summary()}")
        written += [int8.onnx_path, int8.sidecar_path, int8.tensorrt_path, int8.cache_path, int8.manifest_path]
    for path in written:
        if path is not None:
            print(f"wrote {path}")
    return result


def print_engine_step(result: ExportResult, plugin: Path | None, require_engine: bool) -> None:
    """Build the plans when TensorRT is importable (print them), else print the commands for the target."""
    from fornet.export.tensorrt.deploy import build_or_describe_engines  # onnx

    step = build_or_describe_engines(result, plugin, require_engine)
    for plan in step.built:
        print(f"wrote {plan}")
    if step.commands:
        print("TensorRT is not importable here; the ONNX files are complete. Build the engine on the target with:")
        for command in step.commands:
            print(f"  {command}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The export options, the TensorRT engine group and the deployment packages."""
    add_export_arguments(parser)
    add_options(parser, EngineTarget)
    add_options(parser, PackageOptions)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Export, then build the plans (or print how to build them on the target), then the packages."""
    packages = options_from_args(PackageOptions, args)
    check_package_targets(packages, options_from_args(IOFormat, args), options_from_args(ExportTarget, args).out)
    result = run_export(args)
    engine = options_from_args(EngineTarget, args)
    print_engine_step(result, engine.plugin, engine.require_engine)
    for line in write_packages(packages, options_from_args(ExportOptions, args), result.onnx_path,
                               result.engine_sources()[0]):
        print(line)
    return 0


COMMAND = Command(
    name="export",
    alias="fornet-export",
    summary="checkpoint -> verified ONNX (FP32, FP16, INT8) + sidecars; TensorRT plan when available",
    description="Export a FoR-Net checkpoint to ONNX (fornet.onnx + fornet.onnx.json; --fp16 adds "
                "fornet_fp16.onnx; --int8 adds fornet_int8_tensorrt.onnx, fornet_int8.onnx, fornet.calib.cache "
                "and fornet_int8.json), "
                "with the Top-K gate as one fornet::TopKGate node, simplified with onnxsim and verified "
                "against PyTorch on ONNX Runtime.",
    add_arguments=add_arguments,
    run=run,
    epilog=EXAMPLES,
)
main = COMMAND.alias_main
