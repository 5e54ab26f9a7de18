"""TensorRT's implicit-INT8 calibration cache (``fornet.calib.cache``): writer and reader together.

Format (TensorRT's text cache, read by an ``IInt8EntropyCalibrator2`` on TensorRT 10.x and by
``trtexec --int8 --calib=FILE``)::

    TRT-<version>-EntropyCalibration2
    <ONNX tensor name>: <8 hex digits: big-endian float32 bits of scale = amax / 127>

``<version>`` is TensorRT's version number (``10.3.0`` -> ``100300``). TensorRT ignores a cache
whose header names another version or algorithm and then tries to recalibrate, which a cache-only
calibrator cannot; so the header must match the TensorRT on the device (JetPack 6.1/6.2: 10.3).
The header always says ``EntropyCalibration2`` because that is the calibrator class serving the
cache; the scales themselves come from whichever method calibrated them (see the INT8 manifest).
The calibrator that serves a cache to TensorRT is in :mod:`fornet.export.tensorrt.legacy_int8`.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fornet.atomic import write_text_atomic
from fornet.errors import FornetError
from fornet.export.tensorrt.errors import TensorRTBuildError
from fornet.runtime.tensorrt.env import tensorrt_version_number

_HEADER = re.compile(r"TRT-(\d+)-EntropyCalibration2")
_ENTRY = re.compile(r"(.+): ([0-9A-Fa-f]{8})")


class CalibrationCacheError(TensorRTBuildError):
    """A calibration cache that cannot be read (missing, malformed, another TensorRT) or written."""


@dataclass(frozen=True)
class CalibrationCache:
    """A validated ``EntropyCalibration2`` cache."""

    path: Path
    tensorrt_version: int
    scales: dict[str, float]
    data: bytes


def read_calibration_cache(path: str | os.PathLike[str]) -> CalibrationCache:
    """Read and validate a TensorRT ``EntropyCalibration2`` text cache.

    Raises:
        CalibrationCacheError: missing file, wrong header, malformed or no entries.
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CalibrationCacheError(
            f"cannot read calibration cache {source} ({exc.strerror}); produce it with the INT8 "
            "calibration step or pass the right path to --legacy-int8-cache"
        ) from exc
    lines = data.decode("utf-8", errors="replace").splitlines()
    header = _HEADER.fullmatch(lines[0].strip()) if lines else None
    if header is None:
        raise CalibrationCacheError(
            f"{source} is not a TensorRT entropy calibration cache: the first line must be "
            "TRT-<version>-EntropyCalibration2 (ONNX Runtime's `name amax` tables must be converted first)"
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        entry = _ENTRY.fullmatch(line.strip())
        if entry is None:
            raise CalibrationCacheError(
                f"{source}:{number}: expected '<tensor name>: <8 hex digits>', got {line.strip()!r}; "
                "regenerate the cache"
            )
        scales[entry.group(1)] = struct.unpack(">f", bytes.fromhex(entry.group(2)))[0]
    if not scales:
        raise CalibrationCacheError(f"{source} holds no tensor scales; regenerate the cache")
    return CalibrationCache(path=source, tensorrt_version=int(header.group(1)), scales=scales, data=data)


def check_cache_version(cache: CalibrationCache, tensorrt_version: int) -> None:
    """Refuse a cache written for another TensorRT major.minor (TensorRT would recalibrate, and
    a cache-only calibrator has no data to recalibrate with)."""
    if cache.tensorrt_version // 100 != tensorrt_version // 100:
        raise CalibrationCacheError(
            f"{cache.path} was written for TensorRT {_dotted(cache.tensorrt_version)}, this is "
            f"{_dotted(tensorrt_version)}; regenerate the cache for this version (header "
            f"TRT-{tensorrt_version}-EntropyCalibration2) or build the Q/DQ graph fornet_int8.onnx"
        )



TRT_CACHE_NAME = "fornet.calib.cache"
#: TensorRT of JetPack 6.1 / 6.2, the last implicit-INT8 platform users run.
DEFAULT_TRT_VERSION = "10.3.0"
CACHE_ALGORITHM = "EntropyCalibration2"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def trt_version_number(version: str) -> int:
    """``"10.3.0"`` (or ``"10.3.0.26"``) -> ``100300``, the number in the cache header.

    Raises:
        CalibrationCacheError: not a ``major.minor.patch`` version of TensorRT 10.x.
    """
    try:
        number = tensorrt_version_number(version)
    except FornetError as exc:
        raise CalibrationCacheError(f"TensorRT version {version!r} is not major.minor.patch; pass e.g. 10.3.0 "
                              "(JetPack 6.1/6.2) or what `python3 -c 'import tensorrt; print(tensorrt.__version__)'` "
                              "prints on the device") from exc
    if not 100000 <= number < 110000:
        raise CalibrationCacheError(f"TensorRT {version} has no implicit INT8 cache path; the cache is for TensorRT "
                              "10.x (TensorRT 11 builds fornet_int8.onnx instead)")
    return number


def cache_header(tensorrt_version: int) -> str:
    """The first line of a cache for TensorRT ``tensorrt_version`` (e.g. ``100300``)."""
    return f"TRT-{tensorrt_version}-{CACHE_ALGORITHM}"


def scale_hex(scale: float) -> str:
    """The 8 hex digits TensorRT stores for ``scale`` (big-endian float32 bits)."""
    return struct.pack(">f", scale).hex()


def format_trt_cache(scales: Mapping[str, float], tensorrt_version: int) -> str:
    """The cache text for ``scales`` (tensor name -> amax / 127), in the given order.

    Raises:
        CalibrationCacheError: no scales, a name TensorRT's format cannot hold, or a scale that is not
            a positive finite float32.
    """
    if not scales:
        raise CalibrationCacheError("no activation scales to write; the INT8 graph has no quantized tensors")
    lines = [cache_header(tensorrt_version)]
    for name, scale in scales.items():
        if not name or name != name.strip() or "\n" in name:
            raise CalibrationCacheError(f"tensor name {name!r} cannot be stored in a TensorRT cache (empty, "
                                  "surrounding spaces or a newline); rename the tensor in the ONNX graph")
        if not (math.isfinite(scale) and 0.0 < scale <= _FLOAT32_MAX):
            raise CalibrationCacheError(f"tensor {name!r} has scale {scale}, not a positive finite float32; "
                                  "recalibrate (--recalibrate) with images that activate the network")
        lines.append(f"{name}: {scale_hex(scale)}")
    return "\n".join(lines) + "\n"


def write_trt_cache(path: str | os.PathLike[str], scales: Mapping[str, float],
                    tensorrt_version: str = DEFAULT_TRT_VERSION) -> Path:
    """Write ``scales`` as a TensorRT ``EntropyCalibration2`` cache for ``tensorrt_version``, atomically."""
    write_text_atomic(path, format_trt_cache(scales, trt_version_number(tensorrt_version)))
    return Path(path)


def _dotted(version: int) -> str:
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
