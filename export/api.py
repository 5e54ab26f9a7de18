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
Before any work, an export that would replace a different kind of export in the folder (another
input or output format, or files it would remove) is refused unless ``overwrite``
(:mod:`fornet.export.replacement`).
"""
# ruff: noqa: TID253

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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
from fornet.export.int8.pipeline import Int8Result, export_int8, plan_int8
from fornet.export.int8.qdq_graph import INT8_NAME
from fornet.export.int8.tensorrt_qdq import TRT_INT8_NAME, require_modelopt
from fornet.export.onnx_function import attach_gate_function, inline_gate
from fornet.export.options import ExportOptions
from fornet.export.prepost import ExportWrapper
from fornet.export.replacement import check_replacement
from fornet.export.sidecar import ExportDescription, build_sidecar, write_sidecar
from fornet.export.simplify import check_graph, require_no_float_shape_arithmetic, simplify
from fornet.export.tensorrt.calibration_cache import TRT_CACHE_NAME
from fornet.export.transaction import ExportTransaction
from fornet.export.verify import VerificationReport, load_images, verify_onnx
from fornet.faults import fault_point
from fornet.model import TENSORRT_TOPK_LIMIT, FoRNet, list_variants, load_model, topk_counts
from fornet.model.memory import activation_profile, check_memory
from fornet.progress import StatusLine

ONNX_NAME = "fornet.onnx"
FP16_NAME = "fornet_fp16.onnx"
#: Every file an export may publish: a new export replaces all of them (those it does not produce are removed).
EXPORT_FILES = (*(name for graph in (ONNX_NAME, FP16_NAME, INT8_NAME, TRT_INT8_NAME)
                  for name in (graph, f"{graph}.json")),
                TRT_CACHE_NAME, MANIFEST_NAME, RANGES_NAME)
Verifier = Callable[[Path], VerificationReport]


def produced_files(options: ExportOptions) -> tuple[str, ...]:
    """The names of the files an export with ``options`` publishes (with their sidecars)."""
    graphs = (ONNX_NAME, *((FP16_NAME,) if options.fp16 else ()),
              *((INT8_NAME, TRT_INT8_NAME) if options.int8 is not None else ()))
    int8_records = (TRT_CACHE_NAME, MANIFEST_NAME, RANGES_NAME) if options.int8 is not None else ()
    return (*(name for graph in graphs for name in (graph, f"{graph}.json")), *int8_records)


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
        ReplacedExportError: ``out_dir`` holds an export of another kind and ``overwrite`` is off.
        FornetError: the output folder cannot be created or written.
        GraphCheckError: the graph failed onnx.checker, onnxsim or the shape-arithmetic check.
        VerificationError: ONNX Runtime disagrees with PyTorch (nothing is published then).
        CalibrationDataError, CalibrationMismatchError, AccuracyGateError, Int8GraphError: see
            :mod:`fornet.export.int8.pipeline` (only with ``int8`` options).
    """
    options = options or ExportOptions()
    options.validate()
    if options.int8 is not None and options.int8.tensorrt:
        require_modelopt()  # before anything is written
    if variant is not None and variant not in list_variants():
        raise ExportError(f"unknown variant {variant!r}; choose one of {', '.join(list_variants())}")
    out = ensure_writable_dir(out_dir)
    status = StatusLine("fornet export", options.progress)
    status(f"loading {checkpoint}")
    model = load_model(checkpoint, variant)
    desc = _describe(model, Path(checkpoint), options)
    transaction = ExportTransaction(out, EXPORT_FILES)  # completes or cleans up a killed export first
    check_replacement(out, ONNX_NAME, desc, EXPORT_FILES, produced_files(options), options.overwrite)
    options = dataclasses.replace(options, gate=desc.gate)  # "auto" resolved
    mean, std, ks = desc.mean, desc.std, desc.ks
    status("preparing the verification images" if options.verify else "skipping the verification (--no-verify)")
    images = (load_images(options.input_size, options.verify_images, options.verify_data,
                          options.verify_split) if options.verify else [])

    def verifier(precision: str, threshold: float) -> Verifier | None:
        if not options.verify:
            return None
        return lambda path: verify_onnx(model, path, images, io=options.io, mean=mean, std=std,
                                        batch=options.batch, ks=ks, threshold=threshold,
                                        precision=precision, progress=options.progress)

    status(f"tracing the graph (ONNX opset {options.opset}) and simplifying it with onnxsim")
    graph = build_graph(model, options, mean, std)
    with transaction:
        result = _export_files(transaction, model, graph, desc, options, verifier, status)
        status(f"publishing into {out}")
        transaction.commit()
    return dataclasses.replace(result, recovered=transaction.recovered)


def _export_files(transaction: ExportTransaction, model: FoRNet, graph: onnx.ModelProto, desc: ExportDescription,
                  options: ExportOptions, verifier: Callable[[str, float], Verifier | None],
                  status: StatusLine) -> ExportResult:
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
    status(f"writing {ONNX_NAME}" + (" and verifying it on ONNX Runtime against PyTorch" if options.verify else ""))
    report = _publish(fp32, onnx_path, verifier("fp32", options.fp32_threshold))
    if report is not None:
        reports["fp32"] = report
    sidecar = write_sidecar(onnx_path, build_sidecar(desc, onnx_path, "fp32", False, report))
    fault_point("export.staged_fp32")
    fp16_path = fp16_sidecar = None
    if options.fp16:
        status(f"converting to FP16 mixed precision: {FP16_NAME}")
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
        status("INT8: calibrating and quantizing")
        try:
            int8 = export_int8(int8_plan, onnx_path, desc, progress=options.progress, stage=transaction.staging)
        except AccuracyGateError:
            transaction.commit()
            raise
    return ExportResult(transaction.final(ONNX_NAME), transaction.final(sidecar.name), fp16_path, fp16_sidecar,
                        desc.ks, reports, int8, desc.gate)
