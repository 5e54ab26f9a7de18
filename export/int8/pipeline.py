"""The INT8 step of ``fornet-export --int8``: calibrate (or reuse), quantize, gate, fall back, publish.

Files written into the export folder next to ``fornet.onnx``:

* ``fornet_int8.onnx`` (+ its ``.json`` sidecar): explicit Q/DQ quantization laid out for ONNX Runtime
  (:mod:`fornet.export.int8.qdq_graph`; CPU INT8 with VNNI on x86).
* ``fornet_int8_tensorrt.onnx`` (+ sidecar): the same scales laid out for TensorRT 10.x/11.x strongly
  typed builds, on an FP16 base (:mod:`fornet.export.int8.tensorrt_qdq`); gated like the other.
* ``fornet.calib.cache``: the same activation scales (exactly those of the Q/DQ graph's
  QuantizeLinear nodes) as a TensorRT ``EntropyCalibration2`` cache for the legacy 10.x path.
* ``fornet_int8.json``: the manifest (:mod:`fornet.export.int8.manifest`).
* ``fornet_int8.ranges.json``: the calibrated ranges, reused by later runs with the same inputs.

The step is split in two: :func:`plan_int8` (image selection, calibration key, reuse decision)
reads the published folder before anything is written, and :func:`export_int8` writes into the
export's staging folder (:mod:`fornet.export.transaction`), which is published with the other
files. When the accuracy gate fails, no ``fornet_int8.onnx`` or cache is staged (so the previous
ones are removed on publication) while the ranges and the manifest, with the failing report, are
published so that a rerun with ``--fallback-sensitive`` reuses the calibration.
"""
# ruff: noqa: TID253

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto

from fornet.atomic import atomic_path
from fornet.calibration.cityscapes import CityscapesDataset, DatasetError
from fornet.calibration.int8_calibrate import (
    ActivationRanges,
    CalibrationImages,
    ModelInput,
    calibrate,
    image_batches,
    select_calibration_images,
)
from fornet.export.errors import ExportError
from fornet.export.int8.accuracy_gate import AccuracyGateError, GateReport, evaluate_int8
from fornet.export.int8.manifest import (
    MANIFEST_NAME,
    RANGES_NAME,
    CalibrationKey,
    CalibrationRun,
    Int8Manifest,
    QuantizationRecord,
    RangesFile,
    TensorRTInt8Record,
    TrtCacheRecord,
    calibration_key,
    read_manifest,
    reusable_ranges,
    write_manifest,
)
from fornet.export.int8.options import Int8Options
from fornet.export.int8.placement import placement_issues
from fornet.export.int8.qdq_graph import (
    INT8_NAME,
    QDQ_OPTIONS,
    QUANTIZED_OP_TYPES,
    activation_scales,
    check_qdq_graph,
    float_node_names,
    quantize_graph,
    quantized_conv_names,
)
from fornet.export.int8.sensitivity import SensitivityRecord, greedy_fallback, measure_sensitivity
from fornet.export.int8.tensorrt_qdq import (
    MODELOPT_SETTINGS,
    TRT_INT8_NAME,
    quantize_for_tensorrt,
    require_modelopt,
)
from fornet.export.sidecar import ExportDescription, build_sidecar, sha256_file, write_sidecar
from fornet.export.tensorrt.calibration_cache import (
    TRT_CACHE_NAME,
    cache_header,
    trt_version_number,
    write_trt_cache,
)
from fornet.faults import fault_point
from fornet.records import FileDigest


@dataclass(frozen=True)
class Int8Plan:
    """What :func:`plan_int8` decided before ``fornet.onnx`` is written."""

    out_dir: Path
    options: Int8Options
    images: CalibrationImages
    model_input: ModelInput
    fp32_sha256: str
    key: CalibrationKey
    reused: ActivationRanges | None
    eval_dataset: CityscapesDataset | None


@dataclass(frozen=True)
class Int8Result:
    """What :func:`export_int8` wrote (``gate`` is None with ``--no-accuracy-gate``)."""

    onnx_path: Path
    sidecar_path: Path
    cache_path: Path
    manifest_path: Path
    ranges_path: Path
    reused_calibration: bool
    gate: GateReport | None
    fallback: tuple[str, ...]
    tensorrt_path: Path | None = None
    tensorrt_gate: GateReport | None = None


def model_input_for(desc: ExportDescription) -> ModelInput:
    """The calibration/evaluation input of an export (its size, normalisation and input format)."""
    return ModelInput(size=desc.input_size, mean=desc.mean, std=desc.std, raw=desc.io.input == "raw",
                      channel_order=desc.io.channel_order)


def plan_int8(out_dir: str | os.PathLike[str], fp32_sha256: str, desc: ExportDescription,
              options: Int8Options) -> Int8Plan:
    """Choose the calibration images and decide whether the folder's calibration is reused.

    Raises:
        CalibrationDataError: a missing, empty or wrongly laid-out calibration folder.
        AccuracyGateError: the gate's split is missing or unlabelled.
        CalibrationMismatchError: the folder holds a calibration of other inputs (and no
            ``recalibrate``).
    """
    images = select_calibration_images(options.calib_data, options.calib_split, options.calib_images)
    dataset = _eval_dataset(options) if options.accuracy_gate else None
    model_input = model_input_for(desc)
    key = calibration_key(fp32_sha256, images, model_input, options.calib_method)
    reused = reusable_ranges(out_dir, key, options.recalibrate)
    return Int8Plan(Path(out_dir), options, images, model_input, fp32_sha256, key, reused, dataset)


def _eval_dataset(options: Int8Options) -> CityscapesDataset:
    try:
        return CityscapesDataset(options.eval_data or options.calib_data, options.eval_split, require_labels=True)
    except DatasetError as exc:
        raise AccuracyGateError(f"the accuracy gate needs a labelled split: {exc}; or pass --no-accuracy-gate") from exc


def _sensitivity_feeds(plan: Int8Plan, batch: int) -> list[np.ndarray]:
    subset = replace(plan.images, paths=plan.images.paths[: plan.options.sensitivity_images])
    return [plan.model_input.batch(chunk) for chunk in image_batches(subset, batch)]


def _quantizer_record(keep: list[str], fallback: list[str], model: ModelProto) -> QuantizationRecord:
    import onnxruntime

    return QuantizationRecord(
        tool=f"onnxruntime {onnxruntime.__version__} quantize_static (QDQ)",
        op_types=QUANTIZED_OP_TYPES, extra_options=dict(QDQ_OPTIONS),
        activations="INT8, symmetric (zero point 0), per-tensor",
        weights="INT8, symmetric (zero point 0), per output channel (axis 0)",
        bias="FP32 (TensorRT rejects INT32 DequantizeLinear)",
        float_nodes=tuple(keep), fallback_nodes=tuple(fallback), int8_convolutions=len(quantized_conv_names(model)),
        tensorrt_placement_issues=tuple(str(issue) for issue in placement_issues(model, keep)),
    )


def _calibration(plan: Int8Plan, fp32_path: str | os.PathLike[str], batch: int, progress: bool,
                 stage: Path) -> tuple[ActivationRanges, CalibrationRun]:
    """The plan's reused ranges (copied into ``stage``), or new ones (saved there); plus the manifest's
    calibration record."""
    start = time.perf_counter()
    ranges = plan.reused
    if ranges is None:
        ranges, stats = calibrate(fp32_path, plan.images, plan.model_input, plan.options.calib_method, batch=batch,
                                  progress=progress)
        ranges.save(stage / RANGES_NAME)
        input_stats = stats.to_record()
    else:
        shutil.copyfile(plan.out_dir / RANGES_NAME, stage / RANGES_NAME)
        stored = read_manifest(plan.out_dir)
        input_stats = stored.calibration.input_stats if stored is not None else None
    record = CalibrationRun(data=str(plan.images.root), split=plan.images.split, images=tuple(plan.images.names),
                            reused=plan.reused is not None, input_stats=input_stats,
                            seconds=round(time.perf_counter() - start, 1))
    return ranges, record


@dataclass
class _Quantized:
    """The INT8 graph that the gate (and the fallback) settled on."""

    model: ModelProto
    gate: GateReport | None
    fallback: list[str]
    sensitivity: SensitivityRecord | None


def _quantize_and_gate(plan: Int8Plan, fp32_path: str | os.PathLike[str], desc: ExportDescription,
                       ranges: ActivationRanges, keep: list[str], progress: bool) -> _Quantized:
    """Build the INT8 graph, gate it and, when asked, fall back layer by layer until it passes."""
    options = plan.options
    with tempfile.TemporaryDirectory(prefix="fornet-int8-") as tmp:
        built: dict[str, ModelProto] = {}

        def build(fallback: list[str]) -> Path:
            built["model"] = quantize_graph(fp32_path, ranges, [*keep, *fallback])
            check_qdq_graph(built["model"], fallback)
            path = Path(tmp) / f"int8_{len(fallback)}.onnx"
            onnx.save(built["model"], path)
            return path

        dataset = plan.eval_dataset
        if dataset is None:
            build([])
            return _Quantized(built["model"], None, [], None)

        def attempt(float_layers: list[str]) -> GateReport:
            return evaluate_int8(fp32_path, build(float_layers), dataset, plan.model_input, batch=desc.batch,
                                 ks=desc.ks, max_drop=options.max_miou_drop, limit=options.eval_images,
                                 progress=progress)

        gate = attempt([])
        if gate.passed or not options.fallback_sensitive:
            return _Quantized(built["model"], gate, [], None)
        ranking = measure_sensitivity(fp32_path, ranges, quantized_conv_names(built["model"]), keep,
                                      _sensitivity_feeds(plan, desc.batch), progress)
        fallback, final, steps = greedy_fallback(ranking, attempt, options.max_fallback_layers)
        sensitivity = SensitivityRecord(images=min(options.sensitivity_images, len(plan.images.paths)),
                                        metric="fraction of pixels whose class changes with only this layer in INT8",
                                        ranking=tuple(ranking), steps=tuple(steps))
        return _Quantized(built["model"], final or gate, fallback, sensitivity)


def _tensorrt_file(plan: Int8Plan, fp32_path: str | os.PathLike[str], desc: ExportDescription,
                   ranges: ActivationRanges, keep_float: list[str],
                   progress: bool) -> tuple[ModelProto, GateReport | None]:
    """The TensorRT-targeted graph (same scales and float layers), gated on ONNX Runtime.

    ONNX Runtime runs it with its graph optimisations off: every Q/DQ node as written, the numerics
    TensorRT reproduces (its CPU optimiser mis-fuses FP16 Q/DQ pairs).
    """
    calibration = np.concatenate(_sensitivity_feeds(plan, desc.batch))
    model = quantize_for_tensorrt(fp32_path, ranges, calibration, keep_float)
    dataset = plan.eval_dataset
    if dataset is None:
        return model, None
    with tempfile.TemporaryDirectory(prefix="fornet-int8-trt-") as tmp:
        path = Path(tmp) / TRT_INT8_NAME
        onnx.save(model, path)
        gate = evaluate_int8(fp32_path, path, dataset, plan.model_input, batch=desc.batch, ks=desc.ks,
                             max_drop=plan.options.max_miou_drop, limit=plan.options.eval_images,
                             progress=progress, exact_numerics=True)
    return model, gate


def _refuse(stage: Path, out: Path, gate: GateReport, options: Int8Options, manifest: Int8Manifest) -> None:
    """Stage the manifest with the failing report and raise :class:`AccuracyGateError`."""
    write_manifest(stage, manifest)
    manifest = out / MANIFEST_NAME
    hint = "" if options.fallback_sensitive else "add --fallback-sensitive to keep the most sensitive layers in FP32, "
    raise AccuracyGateError(
        f"INT8 export refused: {gate.summary()}\nno INT8 graph or cache was written; the report "
        f"is in {manifest}. To fix: {hint}try another --calib-method or more --calib-images, or raise "
        "--max-miou-drop (--no-accuracy-gate skips the check)"
    )


def export_int8(plan: Int8Plan, fp32_path: str | os.PathLike[str], desc: ExportDescription,
                progress: bool = True, stage: Path | None = None) -> Int8Result:
    """Calibrate (unless reused), quantize, run the accuracy gate (and the fallback), write the files.

    The files are written into ``stage`` (the export's staging folder; default: the output folder
    itself); the paths in the result are those in the output folder.

    Raises:
        ExportError: ``fp32_path`` is not the graph the plan was made for.
        AccuracyGateError: the INT8 graph loses more than ``max_miou_drop`` points or Top-K is
            not exact (after the fallback, if enabled); the manifest records the report.
        Int8GraphError: the Q/DQ graph breaks the layout rules.
        CalibrationError, DatasetError: calibration failed or an image is unreadable.
    """
    out, options = plan.out_dir, plan.options
    stage = out if stage is None else stage
    if sha256_file(fp32_path) != plan.fp32_sha256:
        raise ExportError(f"{fp32_path} changed between planning and INT8 export; run the export again")
    ranges, calibration = _calibration(plan, fp32_path, desc.batch, progress, stage)
    fault_point("export.calibrated")
    keep = float_node_names(onnx.load(fp32_path))
    result = _quantize_and_gate(plan, fp32_path, desc, ranges, keep, progress)
    gate = result.gate
    manifest = Int8Manifest(
        status="not gated" if gate is None else ("passed" if gate.passed else "failed"),
        calibration_key=plan.key, calibration=calibration,
        ranges=RangesFile(RANGES_NAME, sha256_file(stage / RANGES_NAME), len(ranges.ranges)),
        quantization=_quantizer_record(keep, result.fallback, result.model),
        accuracy_gate=None if gate is None else gate.to_record(data=str(options.eval_data or options.calib_data)),
        sensitivity=result.sensitivity,
    )
    if gate is not None and not gate.passed:
        _refuse(stage, out, gate, options, manifest)
    trt_model, trt_gate = None, None
    if options.tensorrt:
        trt_model, trt_gate = _tensorrt_file(plan, fp32_path, desc, ranges, [*keep, *result.fallback], progress)
        trt_record = TensorRTInt8Record(
            file=TRT_INT8_NAME, tool=f"nvidia-modelopt {require_modelopt()}", settings=MODELOPT_SETTINGS,
            base_precision="fp16", placement="TensorRT Q/DQ placement rules: no issues",
            accuracy_gate=None if trt_gate is None else trt_gate.to_record(
                numerics="ONNX Runtime, graph optimisations off"))
        manifest = replace(manifest, tensorrt=trt_record)
        if trt_gate is not None and not trt_gate.passed:
            _refuse(stage, out, trt_gate, options, manifest)
    int8_path = stage / INT8_NAME
    with atomic_path(int8_path) as tmp_path:
        onnx.save(result.model, tmp_path)
    sidecar = write_sidecar(int8_path, build_sidecar(desc, int8_path, "int8", False, None))
    scales = activation_scales(result.model)
    cache = write_trt_cache(stage / TRT_CACHE_NAME, scales, options.trt_cache_version)
    manifest = replace(
        manifest, int8_onnx=FileDigest(INT8_NAME, sha256_file(int8_path)),
        trt_cache=TrtCacheRecord(
            file=TRT_CACHE_NAME, sha256=sha256_file(cache), tensors=len(scales),
            header=cache_header(trt_version_number(options.trt_cache_version)),
            tensorrt_version=options.trt_cache_version,
            note="scales (amax / 127) of exactly the tensors quantized in fornet_int8.onnx, under their fornet.onnx "
                 "names; for TensorRT 10.x implicit INT8 of fornet.onnx (trtexec --int8 --calib, "
                 "fornet-build --legacy-int8-cache)"))
    trt_path = None
    if trt_model is not None and manifest.tensorrt is not None:
        trt_path = stage / TRT_INT8_NAME
        with atomic_path(trt_path) as tmp_path:
            onnx.save(trt_model, tmp_path)
        write_sidecar(trt_path, build_sidecar(desc, trt_path, "int8", False, None))
        manifest = replace(manifest, tensorrt=replace(manifest.tensorrt, sha256=sha256_file(trt_path)))
    fault_point("export.staged_int8")
    manifest_path = write_manifest(stage, manifest)
    return Int8Result(onnx_path=out / int8_path.name, sidecar_path=out / sidecar.name, cache_path=out / cache.name,
                      manifest_path=out / manifest_path.name, ranges_path=out / RANGES_NAME,
                      reused_calibration=plan.reused is not None, gate=gate, fallback=tuple(result.fallback),
                      tensorrt_path=None if trt_path is None else out / trt_path.name, tensorrt_gate=trt_gate)
