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

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fornet import __version__
from fornet.calibration.int8_calibrate import (
    METHOD_SETTINGS,
    ActivationRanges,
    CalibrationImages,
    ModelInput,
)
from fornet.errors import RecordError
from fornet.export.errors import ExportError
from fornet.hashing import sha256_file
from fornet.records import Record
from fornet.runtime.model_io import ToolInfo

MANIFEST_NAME = "fornet_int8.json"
RANGES_NAME = "fornet_int8.ranges.json"


class CalibrationMismatchError(RecordError, ExportError):
    """The folder holds a calibration made from other inputs than this export's (or an unreadable manifest)."""


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

    status: str
    calibration_key: dict[str, Any]
    calibration: dict[str, Any]
    ranges: dict[str, Any]
    quantization: dict[str, Any]
    accuracy_gate: dict[str, Any] | None
    sensitivity: dict[str, Any] | None
    tool: ToolInfo = field(default_factory=lambda: ToolInfo("fornet-deploy", __version__))
    int8_onnx: dict[str, Any] | None = None
    trt_cache: dict[str, Any] | None = None
    #: ``fornet_int8_tensorrt.onnx``: tool, settings, placement and its own accuracy gate.
    tensorrt: dict[str, Any] | None = None


def tool_versions() -> dict[str, str]:
    """Versions of the tools whose behaviour shapes the ranges."""
    import cv2
    import numpy as np
    import onnx
    import onnxruntime

    return {"fornet-deploy": __version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def calibration_key(fp32_sha256: str, images: CalibrationImages, model_input: ModelInput,
                    method: str) -> dict[str, Any]:
    """The key a stored calibration must match to be reused (see the module docstring)."""
    return {
        "fp32_onnx_sha256": fp32_sha256,
        "images": {"split": images.split, "count": len(images.paths), "sha256": images.fingerprint()},
        "preprocessing": model_input.describe(),
        "method": {"name": method, **METHOD_SETTINGS[method]},
        "tools": tool_versions(),
    }


def key_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable ``path: old -> new`` lines for every leaf where two keys differ."""
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


def reusable_ranges(out_dir: str | os.PathLike[str], key: dict[str, Any],
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
    differences = key_differences(manifest.calibration_key, key)
    if differences:
        listed = "\n  ".join(differences)
        raise CalibrationMismatchError(
            f"{path} holds a calibration made from other inputs than this export:\n  {listed}\n"
            "pass --recalibrate to calibrate again (replaces the INT8 files in this folder), "
            "or export into another --out folder"
        )
    ranges_path = Path(out_dir) / RANGES_NAME
    stored = manifest.ranges.get("sha256")
    if not ranges_path.is_file() or sha256_file(ranges_path) != stored:
        raise CalibrationMismatchError(f"{ranges_path} is missing or was modified since {path} was written; "
                                       "pass --recalibrate to calibrate again")
    return ActivationRanges.load(ranges_path)


def write_manifest(out_dir: str | os.PathLike[str], content: dict[str, Any]) -> Path:
    """Write ``fornet_int8.json`` (an :class:`Int8Manifest` of ``content``) atomically; return its path."""
    return Int8Manifest(**content).save(Path(out_dir) / MANIFEST_NAME)
