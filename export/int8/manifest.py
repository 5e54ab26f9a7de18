"""``fornet_int8.json``: what the INT8 artefacts were made from, and when a calibration may be reused.

The manifest's ``calibration_key`` holds everything that decides the activation ranges:

* the sha256 of the FP32 graph (``fornet.onnx``) they were measured on,
* the calibration images (split, count and a sha256 over every image's relative name and bytes;
  the list itself is recorded beside the key),
* the preprocessing (function, resize, input size and format, mean, std),
* the calibration method and its settings,
* the tool versions (fornet-deploy, onnxruntime, onnx, numpy, OpenCV).

A later export into the same folder with an identical key reuses the stored ranges
(``fornet_int8.ranges.json``) instead of calibrating again; a different key is refused, naming
every difference, unless ``--recalibrate`` is given (or another ``--out`` is used). The refusal
happens before anything in the folder is rewritten. The TensorRT version of the cache header is not
part of the key: the cache is rewritten from the same ranges for any ``--trt-cache-version``.
"""
# ruff: noqa: TID253

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fornet import __version__
from fornet.calibration.int8_calibrate import (
    METHOD_SETTINGS,
    ActivationRanges,
    CalibrationImages,
    ChannelStats,
    MethodSettings,
    ModelInput,
    Preprocessing,
)
from fornet.errors import RecordError
from fornet.export.errors import ExportError
from fornet.export.int8.accuracy_gate import GateRecord
from fornet.export.int8.sensitivity import SensitivityRecord
from fornet.export.int8.tensorrt_qdq import ModelOptSettings
from fornet.hashing import sha256_file
from fornet.records import FileDigest, Record
from fornet.runtime.model_io import ToolInfo

MANIFEST_NAME = "fornet_int8.json"
RANGES_NAME = "fornet_int8.ranges.json"


class CalibrationMismatchError(RecordError, ExportError):
    """The folder holds a calibration made from other inputs than this export's (or an unreadable manifest)."""


@dataclass(frozen=True)
class ImageSetKey:
    """The calibration images in the key: split, count, and a sha256 over their relative names and bytes."""

    split: str
    count: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class MethodKey(MethodSettings):
    """The calibration method in the key: its name and settings."""

    name: str


@dataclass(frozen=True)
class CalibrationKey:
    """Everything that decides the activation ranges (see the module docstring)."""

    fp32_onnx_sha256: str
    images: ImageSetKey
    preprocessing: Preprocessing
    method: MethodKey
    #: Version of each tool whose behaviour shapes the ranges, by distribution name.
    tools: dict[str, str]


@dataclass(frozen=True)
class CalibrationRun:
    """The calibration of this export: its images, whether it was reused, the input statistics and its time."""

    data: str
    split: str
    #: The images relative to ``data``, in calibration order.
    images: tuple[str, ...]
    reused: bool
    input_stats: ChannelStats | None
    seconds: float


@dataclass(frozen=True)
class RangesFile:
    """``fornet_int8.ranges.json``: name, sha256 and number of tensors."""

    file: str
    sha256: str
    tensors: int


@dataclass(frozen=True)
class QuantizationRecord:
    """How ``fornet_int8.onnx`` was quantized: tool, operator types, number formats and the float layers."""

    tool: str
    op_types: tuple[str, ...]
    extra_options: dict[str, bool]
    activations: str
    weights: str
    bias: str
    float_nodes: tuple[str, ...]
    fallback_nodes: tuple[str, ...]
    int8_convolutions: int
    #: Where the graph breaks TensorRT's Q/DQ placement rules (informational: it is laid out for ONNX Runtime).
    tensorrt_placement_issues: tuple[str, ...]


@dataclass(frozen=True)
class TrtCacheRecord:
    """``fornet.calib.cache``: the same scales as a TensorRT 10.x calibration cache."""

    file: str
    sha256: str
    tensors: int
    header: str
    tensorrt_version: str
    note: str


@dataclass(frozen=True)
class TensorRTInt8Record:
    """``fornet_int8_tensorrt.onnx``: tool, settings, placement and its own accuracy gate (sha256 once written)."""

    file: str
    tool: str
    settings: ModelOptSettings
    base_precision: str
    placement: str
    accuracy_gate: GateRecord | None
    sha256: str | None = None


@dataclass(frozen=True)
class Int8Manifest(Record):
    """``fornet_int8.json``: what the INT8 files were made from, the gate's verdict and the reuse key."""

    FORMAT: ClassVar[str] = "fornet-deploy/int8-manifest"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy INT8 manifest"
    FIX: ClassVar[str] = "delete it, pass --recalibrate, or export into another --out folder"
    ERROR: ClassVar[type[RecordError]] = CalibrationMismatchError
    #: A refused export has no ``int8_onnx`` / ``trt_cache`` entries at all; ``tensorrt`` only when that file was made.
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("int8_onnx", "trt_cache", "tensorrt")

    #: ``passed``, ``failed`` or ``not gated``.
    status: str
    calibration_key: CalibrationKey
    calibration: CalibrationRun
    ranges: RangesFile
    quantization: QuantizationRecord
    accuracy_gate: GateRecord | None
    sensitivity: SensitivityRecord | None
    tool: ToolInfo = field(default_factory=lambda: ToolInfo("fornet-deploy", __version__))
    int8_onnx: FileDigest | None = None
    trt_cache: TrtCacheRecord | None = None
    tensorrt: TensorRTInt8Record | None = None


def tool_versions() -> dict[str, str]:
    """Versions of the tools whose behaviour shapes the ranges."""
    import cv2
    import onnx
    import onnxruntime

    return {"fornet-deploy": __version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def calibration_key(fp32_sha256: str, images: CalibrationImages, model_input: ModelInput,
                    method: str) -> CalibrationKey:
    """The key a stored calibration must match to be reused (see the module docstring)."""
    return CalibrationKey(
        fp32_onnx_sha256=fp32_sha256,
        images=ImageSetKey(images.split, len(images.paths), images.fingerprint()),
        preprocessing=model_input.describe(),
        method=MethodKey(name=method, **asdict(METHOD_SETTINGS[method])),
        tools=tool_versions(),
    )


def key_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable ``path: old -> new`` lines for every leaf where two keys (as dicts) differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for name in sorted(set(old) | set(new)):
            lines += key_differences(old.get(name), new.get(name), f"{prefix}.{name}" if prefix else name)
        return lines
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def read_manifest(out_dir: str | os.PathLike[str]) -> Int8Manifest | None:
    """The manifest in ``out_dir``, or None if there is none.

    Raises:
        CalibrationMismatchError: a manifest that is not a valid file of this format.
    """
    path = Path(out_dir) / MANIFEST_NAME
    return Int8Manifest.load(path) if path.exists() else None


def reusable_ranges(out_dir: str | os.PathLike[str], key: CalibrationKey,
                    recalibrate: bool = False) -> ActivationRanges | None:
    """The stored ranges when ``out_dir`` holds a calibration with exactly ``key``; None when
    there is none or ``recalibrate`` asks for a new one.

    Raises:
        CalibrationMismatchError: the stored calibration was made from other inputs (every
            difference is listed), or its ranges file is missing or was modified.
    """
    if recalibrate:
        return None
    manifest = read_manifest(out_dir)
    if manifest is None:
        return None
    path = Path(out_dir) / MANIFEST_NAME
    differences = key_differences(asdict(manifest.calibration_key), asdict(key))
    if differences:
        listed = "\n  ".join(differences)
        raise CalibrationMismatchError(
            f"{path} holds a calibration made from other inputs than this export:\n  {listed}\n"
            "pass --recalibrate to calibrate again (replaces the INT8 files in this folder), "
            "or export into another --out folder"
        )
    ranges_path = Path(out_dir) / RANGES_NAME
    stored = manifest.ranges.sha256
    if not ranges_path.is_file() or sha256_file(ranges_path) != stored:
        raise CalibrationMismatchError(f"{ranges_path} is missing or was modified since {path} was written; "
                                       "pass --recalibrate to calibrate again")
    return ActivationRanges.load(ranges_path)


def write_manifest(out_dir: str | os.PathLike[str], manifest: Int8Manifest) -> Path:
    """Write ``manifest`` as ``out_dir/fornet_int8.json`` atomically; return its path."""
    return manifest.save(Path(out_dir) / MANIFEST_NAME)
