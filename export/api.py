"""``export_onnx``: checkpoint -> verified ``fornet.onnx`` (+ ``fornet_fp16.onnx``) and sidecars.

Steps: load the checkpoint; trace the model with the gate as one ``fornet::TopKGate`` node
(TorchScript exporter); attach the gate's model-local function; ``onnx.checker`` (full);
onnxsim (checked); for ``gate="native"`` inline the function and simplify again; refuse float
arithmetic on shapes; verify on ONNX Runtime against PyTorch; optionally convert to FP16 mixed
precision and verify that too. Each file gets a JSON sidecar. With ``int8`` options, the INT8 step
(:mod:`fornet.export.int8.pipeline`) decides about reusing a stored calibration first, then writes
``fornet_int8.onnx``, ``fornet.calib.cache`` and ``fornet_int8.json``.

The export is one transaction (:mod:`fornet.export.transaction`): every file is written into a
staging folder inside the output folder and published together only when all of them are written
and verified, replacing the previous export's files (and removing those it does not produce). A
failure or a kill at any moment leaves the previous export whole.
"""
# ruff: noqa: TID253

from __future__ import annotations

import dataclasses
import hashlib
import io
import operator
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from fornet.atomic import atomic_path, ensure_writable_dir
from fornet.contract import INPUT_NAME, TOPK_GATE
from fornet.export.errors import ExportError, VerificationError
from fornet.export.fp16 import convert_to_fp16
from fornet.export.gate_export import export_gate
from fornet.export.int8.accuracy_gate import AccuracyGateError
from fornet.export.int8.manifest import MANIFEST_NAME, RANGES_NAME
from fornet.export.int8.pipeline import Int8Options, Int8Result, export_int8, plan_int8
from fornet.export.int8.qdq_graph import INT8_NAME
from fornet.export.int8.tensorrt_qdq import TRT_INT8_NAME
from fornet.export.onnx_function import attach_gate_function, inline_gate
from fornet.export.prepost import ExportWrapper, IOFormat
from fornet.export.sidecar import ExportDescription, build_sidecar, write_sidecar
from fornet.export.simplify import check_graph, require_no_float_shape_arithmetic, simplify
from fornet.export.tensorrt.calibration_cache import TRT_CACHE_NAME
from fornet.export.transaction import ExportTransaction
from fornet.export.verify import VerificationReport, load_images, verify_onnx
from fornet.faults import fault_point
from fornet.model import TENSORRT_TOPK_LIMIT, FoRNet, list_variants, load_model, topk_counts
from fornet.model.memory import TARGET_MEMORY_GIB, activation_profile, check_memory
from fornet.options import OptionGroup, hw_arg, option, percent_arg, positive_int_arg

ONNX_NAME = "fornet.onnx"
FP16_NAME = "fornet_fp16.onnx"
#: Every file an export may publish: a new export replaces all of them (those it does not produce are removed).
EXPORT_FILES = (*(name for graph in (ONNX_NAME, FP16_NAME, INT8_NAME, TRT_INT8_NAME)
                  for name in (graph, f"{graph}.json")),
                TRT_CACHE_NAME, MANIFEST_NAME, RANGES_NAME)
GATES = ("auto", "plugin", "native")
Verifier = Callable[[Path], VerificationReport]
#: Opsets accepted: CastLike (in the gate function) needs 15; the TorchScript exporter stops at 20.
OPSET_RANGE = (15, 20)
GRAPH = OptionGroup("graph")
PRECISION = OptionGroup("precision")
VERIFICATION = OptionGroup("verification (PyTorch vs ONNX Runtime)")


@dataclass(frozen=True)
class ExportOptions:
    """How to export (the CLI flags, as a value).

    Attributes:
        input_size: ``(H, W)`` of the network input; both divisible by the output stride.
        batch: static batch size (the example batch when ``dynamic_batch``).
        dynamic_batch: make the batch dimension dynamic.
        opset: ONNX opset of the standard ops.
        gate: ``"auto"`` (default; native when every k fits TensorRT's TopK limit 3840, else plugin; the
            choice is in the result), ``"plugin"`` (one ``fornet::TopKGate`` node with a local function) or
            ``"native"`` (standard ops inlined; every k must be <= 3840).
        fp16: also write the FP16 mixed-precision ``fornet_fp16.onnx``.
        io_fp16: FP16 model inputs and outputs in the FP16 file (default FP32).
        io: in-graph pre/post-processing (raw uint8 input, labels output).
        verify: compare ONNX Runtime with PyTorch before publishing each file.
        verify_data: Cityscapes-layout folder for verification images (default: generated scenes).
        verify_split: split of ``verify_data`` to read.
        verify_images: number of verification images.
        fp32_threshold, fp16_threshold: argmax agreement each file must reach.
        progress: show progress bars.
        target: the Jetson module the engine will run on: input sizes whose engine cannot fit its memory
            are refused before any work (this machine's memory is always checked for the export itself).
        int8: also write the INT8 files (:class:`~fornet.export.int8.pipeline.Int8Options`).
    """

    input_size: tuple[int, int] = option((1024, 2048), flag="--input-size", parse=hw_arg, metavar="HxW",
                                         help="network input size, divisible by the output stride", group=GRAPH)
    batch: int = option(1, flag="--batch", parse=positive_int_arg, metavar="N",
                        help="frames per engine call: the graph's static batch", group=GRAPH)
    dynamic_batch: bool = option(False, flag="--dynamic-batch", group=GRAPH,
                                 help="make the batch dimension dynamic (--batch is then the example/verification "
                                      "batch)")
    opset: int = option(17, flag="--opset", parse=int, metavar="N", group=GRAPH,
                        help=f"ONNX opset, {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
    gate: str = option("auto", flag="--gate", choices=GATES, group=GRAPH,
                       help="plugin: one fornet::TopKGate node (TensorRT plugin; model-local function for other "
                            "runtimes); native: standard ops inlined, needs every k <= 3840; auto: native when "
                            "every k <= 3840, else plugin")
    fp16: bool = option(False, flag="--fp16", group=PRECISION,
                        help="also write fornet_fp16.onnx: FP16 weights/activations, selector head and Top-K gate "
                             "selection in FP32 (for strongly typed TensorRT builds)")
    io_fp16: bool = option(False, flag="--io", choices=("fp32", "fp16"), convert="fp16".__eq__, action="store",
                           flag_default="fp32", group=PRECISION,
                           help="float type of the FP16 file's inputs and outputs")
    io: IOFormat = field(default_factory=IOFormat)
    verify: bool = option(True, flag="--no-verify", help="skip the verification", group=VERIFICATION)
    verify_data: Path | None = option(None, flag="--verify-data", parse=Path, metavar="DIR", group=VERIFICATION,
                                      default_text="generated street scenes",
                                      help="Cityscapes-layout folder to take images from")
    verify_split: str = option("val", flag="--verify-split", help="split of --verify-data", group=VERIFICATION)
    verify_images: int = option(2, flag="--verify-images", parse=int, metavar="N", group=VERIFICATION,
                                help="number of verification images")
    fp32_threshold: float = option(0.999, flag="--fp32-threshold", parse=percent_arg, metavar="PCT",
                                   default_text="99.9", group=VERIFICATION,
                                   help="argmax agreement the FP32 file must reach, in percent")
    fp16_threshold: float = option(0.99, flag="--fp16-threshold", parse=percent_arg, metavar="PCT",
                                   default_text="99.0", group=VERIFICATION,
                                   help="argmax agreement the FP16 file must reach, in percent")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, help="no progress bars")
    target: str | None = option(None, flag="--target", choices=tuple(TARGET_MEMORY_GIB), group=GRAPH,
                                default_text="none",
                                help="Jetson module the engine will run on: refuse an input size or batch whose "
                                     "engine cannot fit its memory (this machine is always checked for the export)")
    int8: Int8Options | None = None

    def validate(self) -> None:
        """Raise :class:`ExportError` for option values that cannot work together."""
        if self.gate not in GATES:
            raise ExportError(f"unknown gate mode {self.gate!r}; choose one of {', '.join(GATES)}")
        if not OPSET_RANGE[0] <= self.opset <= OPSET_RANGE[1]:
            raise ExportError(f"opset {self.opset} is not supported; choose {OPSET_RANGE[0]}..{OPSET_RANGE[1]} "
                              "(17 is what TensorRT 10.3 and later parse best)")
        if self.batch < 1:
            raise ExportError(f"batch must be at least 1, got {self.batch}")
        if self.io_fp16 and not self.fp16:
            raise ExportError("--io fp16 applies to the FP16 file only; add --fp16")
        if self.verify_images < 1:
            raise ExportError(f"--verify-images must be at least 1, got {self.verify_images}")
        for name, value in (("fp32", self.fp32_threshold), ("fp16", self.fp16_threshold)):
            if not 0.0 < value <= 1.0:
                raise ExportError(f"the {name} agreement threshold must be in (0, 1], got {value}; "
                                  "e.g. 0.999 for 99.9%")
        if self.int8 is not None:
            self.int8.validate()


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        onnx_path, sidecar_path: the FP32 file and its JSON sidecar.
        fp16_path, fp16_sidecar_path: the FP16 file and its sidecar (None without ``fp16``).
        ks: the gate's k per ratio for the export size.
        reports: verification report per precision (``"fp32"``, ``"fp16"``; empty without ``verify``).
        int8: what the INT8 step wrote (None without ``int8`` options).
        gate: the gate form the files use (``"plugin"`` or ``"native"``; ``"auto"`` resolved).
        recovered: what was cleaned up or completed from an earlier, killed export into the folder.
    """

    onnx_path: Path
    sidecar_path: Path
    fp16_path: Path | None
    fp16_sidecar_path: Path | None
    ks: tuple[int, ...]
    reports: dict[str, VerificationReport]
    int8: Int8Result | None = None
    gate: str = "plugin"
    recovered: tuple[str, ...] = ()

    def engine_sources(self) -> list[Path]:
        """The ONNX files a deployment builds plans from: INT8 (the TensorRT-targeted file) and/or FP16, else
        FP32; the first is the deployed precision."""
        int8 = None if self.int8 is None else (self.int8.tensorrt_path or self.int8.onnx_path)
        deployed = [p for p in (int8, self.fp16_path) if p is not None]
        return deployed or [self.onnx_path]


def _check_size(model: FoRNet, size: tuple[int, int]) -> None:
    stride = model.config.output_stride
    h, w = size
    if h <= 0 or w <= 0 or h % stride or w % stride:
        nh, nw = (max(stride, v // stride * stride) for v in (h, w))
        raise ExportError(f"input size {h}x{w} is not divisible by this variant's output stride {stride}; "
                          f"use e.g. --input-size {nh}x{nw}")


def _check_native(ks: tuple[int, ...]) -> None:
    too_big = [k for k in ks if k > TENSORRT_TOPK_LIMIT]
    if too_big:
        raise ExportError(f"--gate native needs every k <= {TENSORRT_TOPK_LIMIT} (TensorRT's TopK limit) but "
                          f"this input size gives k = {list(ks)} ({too_big} too large); use --gate plugin "
                          "(the TopKGate plugin has no limit), a smaller --input-size or the 'lite' variant")


def resolve_gate(gate: str, ks: tuple[int, ...]) -> str:
    """``"auto"`` becomes ``"native"`` when TensorRT's own TopK can take every k, else ``"plugin"``."""
    if gate == "auto":
        return "native" if max(ks) <= TENSORRT_TOPK_LIMIT else "plugin"
    return gate


def _describe(model: FoRNet, checkpoint: Path, options: ExportOptions) -> ExportDescription:
    """Check the model-dependent options and gather what the sidecars record."""
    check_memory(activation_profile(model.config), options.input_size, options.batch, work="export",
                 target=options.target)
    _check_size(model, options.input_size)
    stride = model.config.output_stride
    ks = topk_counts((options.input_size[0] // stride) * (options.input_size[1] // stride), model.config.ratios)
    gate = resolve_gate(options.gate, ks)
    if gate == "native":
        _check_native(ks)
    if options.io.output == "labels" and options.io.label_dtype == "uint8" and model.num_classes > 256:
        raise ExportError(f"{model.num_classes} classes do not fit uint8 labels; use --label-dtype int32")
    info = model.checkpoint_info
    return ExportDescription(
        variant=info.variant, config=model.config, mean=tuple(info.mean), std=tuple(info.std), io=options.io,
        input_size=options.input_size, batch=options.batch, dynamic_batch=options.dynamic_batch,
        ks=ks, gate=gate, opset=options.opset, checkpoint=checkpoint,
    )


def _trace(model: FoRNet, options: ExportOptions, mean: tuple[float, ...], std: tuple[float, ...]) -> onnx.ModelProto:
    wrapper = ExportWrapper(model, options.io, mean, std).eval()
    example = options.io.example_input(options.batch, options.input_size)
    names = options.io.output_names
    dynamic = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if options.dynamic_batch else None
    buffer = io.BytesIO()
    with export_gate(model), warnings.catch_warnings(), torch.no_grad():
        # k is computed from the (static) grid size on purpose: it must be a constant.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapper, (example,), buffer,  # type: ignore[arg-type]  # file objects work
                          dynamo=False, opset_version=options.opset,
                          input_names=[INPUT_NAME], output_names=names, dynamic_axes=dynamic,
                          custom_opsets={TOPK_GATE.domain: TOPK_GATE.opset_version}, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _test_shapes(options: ExportOptions) -> dict[str, list[int]] | None:
    if not options.dynamic_batch:
        return None
    return {INPUT_NAME: list(options.io.example_input(options.batch, options.input_size).shape)}


def build_graph(model: FoRNet, options: ExportOptions, mean: tuple[float, ...],
                std: tuple[float, ...]) -> onnx.ModelProto:
    """Trace, attach the gate function, check and simplify: the FP32 graph with the gate node."""
    graph = attach_gate_function(_trace(model, options, mean, std))
    check_graph(graph)
    return simplify(graph, _test_shapes(options))


def finish_graph(graph: onnx.ModelProto, options: ExportOptions, simplified: bool) -> onnx.ModelProto:
    """Inline the gate for ``gate="native"``, simplify if needed and run the structural checks."""
    if options.gate == "native":
        graph, simplified = inline_gate(graph), False
    if not simplified:
        graph = simplify(graph, _test_shapes(options))
    check_graph(graph)
    require_no_float_shape_arithmetic(graph)
    return graph


def _publish(graph: onnx.ModelProto, path: Path, verify: Verifier | None) -> VerificationReport | None:
    """Write ``graph`` to ``path`` (in the staging folder) atomically; with ``verify``, only if it passes."""
    with atomic_path(path) as tmp:
        onnx.save(graph, tmp)
        if verify is None:
            return None
        report = verify(tmp)
        if not report.passed:
            raise VerificationError(
                f"{path.name} failed verification: {report.summary()}; nothing was published (the previous "
                "export in the folder is unchanged). "
                "Check the checkpoint with fornet-eval, try more --verify-images, lower the threshold "
                "(--fp32-threshold / --fp16-threshold) if the gap is expected, or use --no-verify to "
                "keep the file for inspection"
            )
    return report


def export_onnx(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str] = "export",
                options: ExportOptions | None = None, *, variant: str | None = None) -> ExportResult:
    """Export a FoR-Net checkpoint to ONNX, verified on ONNX Runtime.

    Args:
        checkpoint: any checkpoint :func:`fornet.model.load_model` accepts (project format,
            bare reference ``state_dict``, wrapped or DDP-prefixed).
        out_dir: output folder (created if needed).
        options: :class:`ExportOptions` (defaults: 1024x2048, batch 1, opset 17, gate auto).
        variant: architecture, when the checkpoint does not record it and it is ambiguous.

    Returns:
        :class:`ExportResult` with the written paths, k values and verification reports.

    Raises:
        CheckpointError: missing, corrupt or mismatched checkpoint.
        ExportError: bad options (unknown variant, size not divisible by the stride, k too large
            for ``gate="native"``, ...).
        FornetError: the output folder cannot be created or written.
        GraphCheckError: the graph failed onnx.checker, onnxsim or the shape-arithmetic check.
        VerificationError: ONNX Runtime disagrees with PyTorch (nothing is published then).
        CalibrationDataError, CalibrationMismatchError, AccuracyGateError, Int8GraphError: see
            :mod:`fornet.export.int8.pipeline` (only with ``int8`` options).
    """
    options = options or ExportOptions()
    options.validate()
    if variant is not None and variant not in list_variants():
        raise ExportError(f"unknown variant {variant!r}; choose one of {', '.join(list_variants())}")
    out = ensure_writable_dir(out_dir)
    model = load_model(checkpoint, variant)
    desc = _describe(model, Path(checkpoint), options)
    options = dataclasses.replace(options, gate=desc.gate)  # "auto" resolved
    mean, std, ks = desc.mean, desc.std, desc.ks
    images = (load_images(options.input_size, options.verify_images, options.verify_data,
                          options.verify_split) if options.verify else [])

    def verifier(precision: str, threshold: float) -> Verifier | None:
        if not options.verify:
            return None
        return lambda path: verify_onnx(model, path, images, io=options.io, mean=mean, std=std,
                                        batch=options.batch, ks=ks, threshold=threshold,
                                        precision=precision, progress=options.progress)

    graph = build_graph(model, options, mean, std)
    with ExportTransaction(out, EXPORT_FILES) as transaction:
        result = _export_files(transaction, model, graph, desc, options, verifier)
        transaction.commit()
    return dataclasses.replace(result, recovered=transaction.recovered)


def _export_files(transaction: ExportTransaction, model: FoRNet, graph: onnx.ModelProto, desc: ExportDescription,
                  options: ExportOptions, verifier: Callable[[str, float], Verifier | None]) -> ExportResult:
    """Write and verify every file of the export into the transaction's staging folder.

    An accuracy-gate refusal of the INT8 graph is a result, not a fault: the transaction is
    committed with the failing report (and no INT8 graph) before the error propagates.
    """
    reports: dict[str, VerificationReport] = {}
    onnx_path = transaction.path(ONNX_NAME)
    fp32 = finish_graph(graph, options, simplified=True)
    int8_plan = None
    if options.int8 is not None:
        fp32_sha256 = hashlib.sha256(fp32.SerializeToString()).hexdigest()
        int8_plan = plan_int8(transaction.out, fp32_sha256, desc, options.int8)
    report = _publish(fp32, onnx_path, verifier("fp32", options.fp32_threshold))
    if report is not None:
        reports["fp32"] = report
    sidecar = write_sidecar(onnx_path, build_sidecar(desc, onnx_path, "fp32", False, report))
    fault_point("export.staged_fp32")
    fp16_path = fp16_sidecar = None
    if options.fp16:
        # Converted before inlining, so a native gate's TopK and masks stay FP32 too.
        half = finish_graph(convert_to_fp16(graph, io_fp16=options.io_fp16), options, simplified=False)
        staged = transaction.path(FP16_NAME)
        report = _publish(half, staged, verifier("fp16", options.fp16_threshold))
        if report is not None:
            reports["fp16"] = report
        written = write_sidecar(staged, build_sidecar(desc, staged, "fp16", options.io_fp16, report))
        fp16_path, fp16_sidecar = transaction.final(FP16_NAME), transaction.final(written.name)
        fault_point("export.staged_fp16")
    int8 = None
    if int8_plan is not None:
        try:
            int8 = export_int8(int8_plan, onnx_path, desc, progress=options.progress, stage=transaction.staging)
        except AccuracyGateError:
            transaction.commit()
            raise
    return ExportResult(transaction.final(ONNX_NAME), transaction.final(sidecar.name), fp16_path, fp16_sidecar,
                        desc.ks, reports, int8, desc.gate)
