"""``fornet-export``: FoR-Net checkpoint -> verified ONNX (FP32, optional FP16) + JSON sidecars.

Examples::

    fornet-export --ckpt run/best.pth --input-size 1024x2048 --out export/
    fornet-export --ckpt model.pth --variant lite --fp16 --input raw --channel-order BGR --output labels
    fornet-export --ckpt model.pth --gate native --input-size 512x1024 --dynamic-batch
    fornet-export --ckpt model.pth --input-size 512x1024 --int8 --calib-data cityscapes/ --fallback-sensitive

The argument groups and :func:`run_export` are reusable: a command that builds TensorRT plans
adds :func:`add_export_arguments` to its parser, calls :func:`run_export` and builds from the
returned :class:`~fornet.export.api.ExportResult`'s ONNX paths.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fornet.calibration.int8_calibrate import CALIB_METHODS, DEFAULT_CALIB_IMAGES
from fornet.cli_utils import friendly_errors, hw_arg
from fornet.export.api import GATES, OPSET_RANGE, ExportOptions, ExportResult, export_onnx
from fornet.export.errors import ExportError
from fornet.export.int8.accuracy_gate import DEFAULT_MAX_MIOU_DROP
from fornet.export.int8.pipeline import Int8Options
from fornet.export.int8.tensorrt_qdq import TRT_INT8_NAME
from fornet.export.prepost import CHANNEL_ORDERS, INPUT_FORMATS, LABEL_DTYPES, OUTPUT_FORMATS, IOFormat
from fornet.export.tensorrt.calibration_cache import DEFAULT_TRT_VERSION


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a percentage in (0, 100], got {text!r}")
    return value / 100.0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the export options (model, graph, precision, pre/post, verification groups)."""
    model = parser.add_argument_group("model")
    model.add_argument("--ckpt", required=True, type=Path,
                       help="checkpoint: a fornet checkpoint or a bare reference state_dict")
    model.add_argument("--variant", help="architecture, if the checkpoint does not record it "
                                         "(r101, r50, r34, r18, lite)")
    graph = parser.add_argument_group("graph")
    graph.add_argument("--input-size", type=hw_arg, default=(1024, 2048), metavar="HxW",
                       help="network input size, divisible by the output stride (default: 1024x2048)")
    graph.add_argument("--batch", type=int, default=1, metavar="N", help="batch size (default: 1)")
    graph.add_argument("--dynamic-batch", action="store_true",
                       help="make the batch dimension dynamic (--batch is then the example/verification batch)")
    graph.add_argument("--opset", type=int, default=17, metavar="N",
                       help=f"ONNX opset, {OPSET_RANGE[0]}..{OPSET_RANGE[1]} (default: 17)")
    graph.add_argument("--gate", choices=GATES, default="auto",
                       help="plugin: one fornet::TopKGate node (TensorRT plugin; model-local function for "
                            "other runtimes); native: standard ops inlined, needs every k <= 3840; auto: "
                            "native when every k <= 3840, else plugin (default: auto)")
    graph.add_argument("--out", type=Path, default=Path("export"), metavar="DIR",
                       help="output folder (default: ./export)")
    precision = parser.add_argument_group("precision")
    precision.add_argument("--fp16", action="store_true",
                           help="also write fornet_fp16.onnx: FP16 weights/activations, selector head and "
                                "Top-K gate selection in FP32 (for strongly typed TensorRT builds)")
    precision.add_argument("--io", choices=("fp32", "fp16"), default="fp32",
                           help="float type of the FP16 file's inputs and outputs (default: fp32)")
    prepost = parser.add_argument_group("in-graph pre/post-processing")
    prepost.add_argument("--input", choices=INPUT_FORMATS, default="normalized",
                         help="normalized: Nx3xHxW float RGB, already normalised; raw: NxHxWx3 uint8 "
                              "frames, normalisation folded into the graph (default: normalized)")
    prepost.add_argument("--channel-order", choices=CHANNEL_ORDERS, default="RGB",
                         help="channel order of --input raw frames (default: RGB)")
    prepost.add_argument("--output", choices=OUTPUT_FORMATS, default="logits",
                         help="logits: NxCxHxW float scores; labels: NxHxW class indices (argmax at the "
                              "input resolution, in the graph) (default: logits)")
    prepost.add_argument("--label-dtype", choices=LABEL_DTYPES, default="uint8",
                         help="dtype of --output labels (default: uint8)")
    verify = parser.add_argument_group("verification (PyTorch vs ONNX Runtime)")
    verify.add_argument("--no-verify", action="store_true", help="skip the verification")
    verify.add_argument("--verify-data", type=Path, metavar="DIR",
                        help="Cityscapes-layout folder to take images from (default: generated street scenes)")
    verify.add_argument("--verify-split", default="val", help="split of --verify-data (default: val)")
    verify.add_argument("--verify-images", type=int, default=2, metavar="N",
                        help="number of verification images (default: 2)")
    verify.add_argument("--fp32-threshold", type=_percent, default=0.999, metavar="PCT",
                        help="argmax agreement the FP32 file must reach, in percent (default: 99.9)")
    verify.add_argument("--fp16-threshold", type=_percent, default=0.99, metavar="PCT",
                        help="argmax agreement the FP16 file must reach, in percent (default: 99.0)")
    _add_int8_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    int8 = parser.add_argument_group(
        "INT8 (fornet_int8_tensorrt.onnx: Q/DQ laid out for TensorRT 10/11 on an FP16 base; fornet_int8.onnx: Q/DQ "
        "for ONNX Runtime; fornet.calib.cache: the same ranges for TensorRT 10.x implicit INT8; fornet_int8.json: "
        "manifest)")
    int8.add_argument("--int8", action="store_true", help="also calibrate and write the INT8 files")
    int8.add_argument("--calib-data", type=Path, metavar="DIR",
                      help="Cityscapes-layout folder with calibration images (needed with --int8; labels not needed)")
    int8.add_argument("--calib-split", default="train", help="split of --calib-data to calibrate on (default: train)")
    int8.add_argument("--calib-images", type=int, default=DEFAULT_CALIB_IMAGES, metavar="N",
                      help=f"calibration images, spread over the split (default: {DEFAULT_CALIB_IMAGES} or all)")
    int8.add_argument("--calib-method", choices=CALIB_METHODS, default="entropy",
                      help="activation ranges: entropy (TensorRT's KL method), percentile (99.99%%) or minmax "
                           "(default: entropy)")
    int8.add_argument("--max-miou-drop", type=float, default=DEFAULT_MAX_MIOU_DROP, metavar="POINTS",
                      help=f"refuse the INT8 files when mIoU drops more than this (default: {DEFAULT_MAX_MIOU_DROP})")
    int8.add_argument("--no-accuracy-gate", action="store_true",
                      help="skip scoring FP32 vs INT8 on a labelled split (and the --max-miou-drop check)")
    int8.add_argument("--eval-data", type=Path, metavar="DIR",
                      help="labelled Cityscapes-layout folder for the accuracy gate (default: --calib-data)")
    int8.add_argument("--eval-split", default="val", help="split scored by the accuracy gate (default: val)")
    int8.add_argument("--eval-images", type=int, metavar="N", help="score only the first N images (default: all)")
    int8.add_argument("--fallback-sensitive", action="store_true",
                      help="when the gate fails, measure per-layer sensitivity and keep the most sensitive layers "
                           "in FP32 until it passes")
    int8.add_argument("--max-fallback-layers", type=int, default=8, metavar="N",
                      help="most layers --fallback-sensitive keeps in FP32 (default: 8)")
    int8.add_argument("--sensitivity-images", type=int, default=4, metavar="N",
                      help="calibration images used to measure per-layer sensitivity (default: 4)")
    int8.add_argument("--no-tensorrt-int8", action="store_true",
                      help="skip fornet_int8_tensorrt.onnx (the Q/DQ file laid out for TensorRT on an FP16 base; it "
                           "needs `pip install 'fornet-deploy[int8-tensorrt]'`)")
    int8.add_argument("--recalibrate", action="store_true",
                      help="calibrate again even if the output folder holds a calibration (replaces it)")
    int8.add_argument("--trt-cache-version", default=DEFAULT_TRT_VERSION, metavar="X.Y.Z",
                      help=f"TensorRT version of the cache header, as on the device (default: {DEFAULT_TRT_VERSION}, "
                           "JetPack 6.1/6.2)")


def _int8_options(args: argparse.Namespace) -> Int8Options | None:
    if not args.int8:
        if args.calib_data is not None:
            raise ExportError("--calib-data is an INT8 option; add --int8")
        return None
    if args.calib_data is None:
        raise ExportError("--int8 needs calibration images: add --calib-data DIR (a Cityscapes-layout folder, "
                          "e.g. one written by `fornet-data synth`)")
    return Int8Options(
        calib_data=args.calib_data, calib_split=args.calib_split, calib_images=args.calib_images,
        calib_method=args.calib_method, max_miou_drop=args.max_miou_drop, accuracy_gate=not args.no_accuracy_gate,
        eval_data=args.eval_data, eval_split=args.eval_split, eval_images=args.eval_images,
        fallback_sensitive=args.fallback_sensitive, max_fallback_layers=args.max_fallback_layers,
        sensitivity_images=args.sensitivity_images, recalibrate=args.recalibrate,
        trt_cache_version=args.trt_cache_version, tensorrt=not args.no_tensorrt_int8,
    )


def options_from_args(args: argparse.Namespace) -> ExportOptions:
    """The :class:`ExportOptions` that parsed :func:`add_export_arguments` flags describe."""
    return ExportOptions(
        input_size=args.input_size, batch=args.batch, dynamic_batch=args.dynamic_batch, opset=args.opset,
        gate=args.gate, fp16=args.fp16, io_fp16=args.io == "fp16",
        io=IOFormat(input=args.input, channel_order=args.channel_order, output=args.output,
                    label_dtype=args.label_dtype),
        verify=not args.no_verify, verify_data=args.verify_data, verify_split=args.verify_split,
        verify_images=args.verify_images, fp32_threshold=args.fp32_threshold,
        fp16_threshold=args.fp16_threshold, progress=not args.quiet, int8=_int8_options(args),
    )


def _show_int8_log() -> None:
    """Print the INT8 step's log (input statistics, warnings) on stderr."""
    logger = logging.getLogger("fornet.int8")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def run_export(args: argparse.Namespace) -> ExportResult:
    """Export as the parsed flags say and print what was written."""
    options = options_from_args(args)
    if options.int8 is not None:
        _show_int8_log()
    result = export_onnx(args.ckpt, args.out, options, variant=args.variant)
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


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    engine = parser.add_argument_group(
        "TensorRT engine",
        "after the ONNX files, the plan for the deployed precision (INT8, else FP16, else FP32) is built when "
        "TensorRT is importable; otherwise the command to run on the target is printed")
    engine.add_argument("--plugin", metavar="LIB", help="TopKGate plugin library (default: the usual search)")
    engine.add_argument("--require-engine", action="store_true",
                        help="fail (exit 2) when no plan can be built here, instead of printing the build command")


def engine_sources(result: ExportResult) -> list[Path]:
    """The ONNX files a deployment builds plans from: INT8 (the TensorRT-targeted file) and/or FP16, else FP32."""
    int8 = None if result.int8 is None else (result.int8.tensorrt_path or result.int8.onnx_path)
    deployed = [p for p in (int8, result.fp16_path) if p is not None]
    return deployed or [result.onnx_path]


def build_or_print_engines(result: ExportResult, plugin: str | None, require_engine: bool) -> None:
    """Build the plans when TensorRT is importable, else print the commands for the target."""
    from fornet.export.tensorrt.build import build_engine, engine_build_command, tensorrt_available

    sources = engine_sources(result)
    if tensorrt_available():
        for source in sources:
            print(f"wrote {build_engine(source, plugin=plugin)}")
        return
    if require_engine:
        raise ExportError("--require-engine: TensorRT's Python bindings are not importable here, so no plan was "
                          "built (the ONNX files are complete); install TensorRT (pip install tensorrt, or "
                          "JetPack's python3-libnvinfer) or drop --require-engine and build on the target")
    print("TensorRT is not importable here; the ONNX files are complete. Build the engine on the target with:")
    if result.gate == "plugin":
        print("  fornet-build-plugin")
    for source in sources:
        print("  " + engine_build_command(source, plugin=plugin))


def build_parser() -> argparse.ArgumentParser:
    """The ``fornet-export`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="fornet-export",
        description="Export a FoR-Net checkpoint to ONNX (fornet.onnx + fornet.onnx.json; --fp16 adds "
                    "fornet_fp16.onnx; --int8 adds fornet_int8_tensorrt.onnx, fornet_int8.onnx, fornet.calib.cache "
                    "and fornet_int8.json), "
                    "with the Top-K gate as one fornet::TopKGate node, simplified with onnxsim and verified "
                    "against PyTorch on ONNX Runtime.",
    )
    add_export_arguments(parser)
    _add_engine_arguments(parser)
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fornet-export``."""
    args = build_parser().parse_args(argv)
    result = run_export(args)
    build_or_print_engines(result, args.plugin, args.require_engine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
