"""Write activation scales as a TensorRT implicit-INT8 calibration cache (``fornet.calib.cache``).

Format (TensorRT's text cache, read by an ``IInt8EntropyCalibrator2`` on TensorRT 10.x and by
``trtexec --int8 --calib=FILE``)::

    TRT-<version>-EntropyCalibration2
    <ONNX tensor name>: <8 hex digits: big-endian float32 bits of scale = amax / 127>

``<version>`` is TensorRT's version number (``10.3.0`` -> ``100300``). TensorRT ignores a cache
whose header names another version or algorithm and then tries to recalibrate, which a cache-only
calibrator cannot; so the header must match the TensorRT on the device (JetPack 6.1/6.2: 10.3).
The header always says ``EntropyCalibration2`` because that is the calibrator class serving the
cache; the scales themselves come from whichever method calibrated them (see the manifest).
The reader is :func:`fornet.export.tensorrt_calibration.read_calibration_cache`.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fornet.atomic import write_text_atomic
from fornet.errors import FornetError

TRT_CACHE_NAME = "fornet.calib.cache"
#: TensorRT of JetPack 6.1 / 6.2, the last implicit-INT8 platform users run.
DEFAULT_TRT_VERSION = "10.3.0"
CACHE_ALGORITHM = "EntropyCalibration2"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class CacheWriteError(FornetError):
    """The scales or the TensorRT version cannot be written as a calibration cache."""


def trt_version_number(version: str) -> int:
    """``"10.3.0"`` (or ``"10.3.0.26"``) -> ``100300``, the number in the cache header.

    Raises:
        CacheWriteError: not a ``major.minor.patch`` version of TensorRT 10.x.
    """
    from fornet.export.tensorrt_env import tensorrt_version_number

    try:
        number = tensorrt_version_number(version)
    except FornetError as exc:
        raise CacheWriteError(f"TensorRT version {version!r} is not major.minor.patch; pass e.g. 10.3.0 "
                              "(JetPack 6.1/6.2) or what `python3 -c 'import tensorrt; print(tensorrt.__version__)'` "
                              "prints on the device") from exc
    if not 100000 <= number < 110000:
        raise CacheWriteError(f"TensorRT {version} has no implicit INT8 cache path; the cache is for TensorRT "
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
        CacheWriteError: no scales, a name TensorRT's format cannot hold, or a scale that is not
            a positive finite float32.
    """
    if not scales:
        raise CacheWriteError("no activation scales to write; the INT8 graph has no quantized tensors")
    lines = [cache_header(tensorrt_version)]
    for name, scale in scales.items():
        if not name or name != name.strip() or "\n" in name:
            raise CacheWriteError(f"tensor name {name!r} cannot be stored in a TensorRT cache (empty, "
                                  "surrounding spaces or a newline); rename the tensor in the ONNX graph")
        if not (math.isfinite(scale) and 0.0 < scale <= _FLOAT32_MAX):
            raise CacheWriteError(f"tensor {name!r} has scale {scale}, not a positive finite float32; "
                                  "recalibrate (--recalibrate) with images that activate the network")
        lines.append(f"{name}: {scale_hex(scale)}")
    return "\n".join(lines) + "\n"


def write_trt_cache(path: str | os.PathLike[str], scales: Mapping[str, float],
                    tensorrt_version: str = DEFAULT_TRT_VERSION) -> Path:
    """Write ``scales`` as a TensorRT ``EntropyCalibration2`` cache for ``tensorrt_version``, atomically."""
    write_text_atomic(path, format_trt_cache(scales, trt_version_number(tensorrt_version)))
    return Path(path)
