"""The TensorRT calibration cache writer: exact text format and the round trip through the 10.x reader."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fornet.export.tensorrt.calibration_cache import (
    CalibrationCacheError,
    check_cache_version,
    format_trt_cache,
    read_calibration_cache,
    scale_hex,
    trt_version_number,
    write_trt_cache,
)

SCALES = {"image": 2.64 / 127, "/model/stem/stem.0/Conv_output_0": 0.031, "/model/gate/TopKGate_output_3": 1e-3}


def test_exact_text_format() -> None:
    text = format_trt_cache({"image": 1.0, "x/y:z": 0.5}, 100300)
    assert text == "TRT-100300-EntropyCalibration2\nimage: 3f800000\nx/y:z: 3f000000\n"


def test_hex_is_big_endian_float32_bits() -> None:
    assert scale_hex(0.0125) == struct.pack(">f", 0.0125).hex() == "3c4ccccd"
    assert len(scale_hex(1e-30)) == 8


def test_round_trip_through_the_legacy_reader(tmp_path: Path) -> None:
    path = write_trt_cache(tmp_path / "fornet.calib.cache", SCALES, "10.3.0")
    cache = read_calibration_cache(path)
    assert cache.tensorrt_version == 100300
    assert list(cache.scales) == list(SCALES)  # order kept
    for name, scale in SCALES.items():
        assert cache.scales[name] == pytest.approx(scale, rel=1e-7)  # float32 precision
    check_cache_version(cache, trt_version_number("10.3.0.26"))
    assert not list(tmp_path.glob(".*.tmp")), "atomic write leaves no temporary file"


@pytest.mark.parametrize(("version", "number"), [("10.3.0", 100300), ("10.13.2.6", 101302), ("10.0.1", 100001)])
def test_version_numbers(version: str, number: int) -> None:
    assert trt_version_number(version) == number


@pytest.mark.parametrize(("version", "message"), [
    ("10.3", "is not major.minor.patch; pass e.g. 10.3.0"),
    ("ten", "is not major.minor.patch"),
    ("11.1.0", "TensorRT 11 builds fornet_int8.onnx instead"),
    ("8.6.2", "the cache is for TensorRT 10.x"),
])
def test_bad_versions(version: str, message: str) -> None:
    with pytest.raises(CalibrationCacheError, match=message):
        trt_version_number(version)


@pytest.mark.parametrize(("scales", "message"), [
    ({}, "no activation scales"),
    ({"a": 0.0}, "not a positive finite float32"),
    ({"a": float("nan")}, "not a positive finite float32"),
    ({"a": 1e39}, "not a positive finite float32"),
    ({"bad\nname": 0.1}, "cannot be stored in a TensorRT cache"),
    ({" padded": 0.1}, "cannot be stored in a TensorRT cache"),
])
def test_unwritable_scales(scales: dict[str, float], message: str, tmp_path: Path) -> None:
    with pytest.raises(CalibrationCacheError, match=message):
        write_trt_cache(tmp_path / "c.cache", scales)
    assert not (tmp_path / "c.cache").exists()
