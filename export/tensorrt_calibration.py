"""Legacy implicit INT8 for TensorRT 10.x (JetPack 6): a calibrator that serves a cache file.

TensorRT 11 removed implicit INT8 (``BuilderFlag.INT8``, ``IInt8*Calibrator``,
``config.int8_calibrator``); there INT8 means a Q/DQ ONNX (``fornet_int8.onnx``) built strongly
typed. Every use of those names sits behind a ``hasattr`` guard, so this module imports and
type-checks against both versions; on 11.x the guard raises :class:`LegacyInt8UnavailableError`.

Cache format (TensorRT's text format, written by the calibration tooling)::

    TRT-100300-EntropyCalibration2
    <tensor name>: <8 hex digits, big-endian float32 bits of amax / 127>
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fornet.errors import FornetError

if TYPE_CHECKING:
    import tensorrt as trt

_HEADER = re.compile(r"TRT-(\d+)-EntropyCalibration2")
_ENTRY = re.compile(r"(.+): ([0-9A-Fa-f]{8})")
_REMOVED_IN_11 = (
    "has no implicit INT8 (removed in TensorRT 11); build the Q/DQ graph fornet_int8.onnx strongly "
    "typed instead (drop --legacy-int8-cache)"
)


class CalibrationCacheError(FornetError):
    """The calibration cache file is missing, malformed or from another TensorRT version."""


class LegacyInt8UnavailableError(FornetError):
    """This TensorRT has no implicit INT8 calibration."""


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


def require_legacy_int8() -> None:
    """Raise :class:`LegacyInt8UnavailableError` unless this TensorRT has implicit INT8."""
    import tensorrt as trt

    if not (hasattr(trt.BuilderFlag, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2")):
        raise LegacyInt8UnavailableError(f"TensorRT {trt.__version__} {_REMOVED_IN_11}")


def enable_legacy_int8(config: trt.IBuilderConfig, cache: CalibrationCache) -> Any:
    """Set ``BuilderFlag.INT8`` and a calibrator serving ``cache`` on ``config``.

    Returns the calibrator; keep a reference to it until the build has finished.
    """
    import tensorrt as trt

    if (
        hasattr(trt.BuilderFlag, "INT8")
        and hasattr(config, "int8_calibrator")
        and hasattr(trt, "IInt8EntropyCalibrator2")
    ):
        cached = cache.data

        class CacheCalibrator(trt.IInt8EntropyCalibrator2):
            """Serves the cache; has no images, so TensorRT must not need to recalibrate."""

            def __init__(self) -> None:
                trt.IInt8EntropyCalibrator2.__init__(self)

            def get_batch_size(self) -> int:
                return 1

            # The stubs type the result as list[int]; TensorRT documents None as "no more data".
            def get_batch(self, names: list[str]) -> list[int] | None:  # type: ignore[override]
                return None

            def read_calibration_cache(self) -> bytes:
                return cached

            def write_calibration_cache(self, cache: Any) -> None:
                return None

        calibrator = CacheCalibrator()
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        return calibrator
    raise LegacyInt8UnavailableError(f"TensorRT {trt.__version__} {_REMOVED_IN_11}")


def _dotted(version: int) -> str:
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
