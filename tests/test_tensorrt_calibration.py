"""Reading TensorRT EntropyCalibration2 caches for the legacy 10.x INT8 path (no TensorRT)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fornet.export.tensorrt.calibration_cache import CalibrationCacheError, check_cache_version, read_calibration_cache
from fornet.runtime.tensorrt.env import tensorrt_version_number


def hex_scale(value: float) -> str:
    return struct.pack(">f", value).hex()


def test_reads_header_and_scales(tmp_path: Path) -> None:
    path = tmp_path / "fornet.cache"
    path.write_text(f"TRT-100300-EntropyCalibration2\nimage: {hex_scale(0.0125)}\n/backbone/conv1/Conv_output_0: "
                    f"{hex_scale(2.5 / 127)}\n\n")
    cache = read_calibration_cache(path)
    assert cache.tensorrt_version == 100300
    assert cache.scales["image"] == pytest.approx(0.0125)
    assert cache.scales["/backbone/conv1/Conv_output_0"] == pytest.approx(2.5 / 127)
    assert cache.data == path.read_bytes()


@pytest.mark.parametrize(("text", "message"), [
    ("image 0.5\n", "must be TRT-<version>-EntropyCalibration2.*ONNX Runtime"),
    ("TRT-100300-MinMaxCalibration\nimage: 3c010a14\n", "EntropyCalibration2"),
    ("TRT-100300-EntropyCalibration2\nimage: 0.0125\n", r":2: expected '<tensor name>: <8 hex digits>'"),
    ("TRT-100300-EntropyCalibration2\n", "holds no tensor scales"),
    ("", "not a TensorRT entropy calibration cache"),
])
def test_malformed_caches(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.cache"
    path.write_text(text)
    with pytest.raises(CalibrationCacheError, match=message):
        read_calibration_cache(path)


def test_missing_cache(tmp_path: Path) -> None:
    with pytest.raises(CalibrationCacheError, match=r"cannot read calibration cache.*--legacy-int8-cache"):
        read_calibration_cache(tmp_path / "none.cache")


def test_version_check_ignores_patch_only(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    path.write_text("TRT-100300-EntropyCalibration2\nimage: 3c010a14\n")
    cache = read_calibration_cache(path)
    check_cache_version(cache, tensorrt_version_number("10.3.1.5"))
    with pytest.raises(CalibrationCacheError, match=r"TensorRT 10.3.0, this is 10.7.0"):
        check_cache_version(cache, tensorrt_version_number("10.7.0.23"))


def test_version_number() -> None:
    assert tensorrt_version_number("10.3.0.26") == 100300
    assert tensorrt_version_number("11.1.0.106") == 110100
