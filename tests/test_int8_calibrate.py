"""INT8 calibration: image selection, bad folders, input statistics, the entropy threshold, ranges."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from fornet.calibration.int8_calibrate import (
    METHOD_SETTINGS,
    ActivationRanges,
    CalibrationDataError,
    CalibrationError,
    ChannelStats,
    InputStats,
    ModelInput,
    calibrate,
    entropy_amax,
    select_calibration_images,
)
from fornet.contract import INPUT_NAME
from tests.helpers.int8 import SIZE, export_fp32, lite_checkpoint, model_input


@pytest.fixture(scope="module")
def lite_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("int8-calib")
    return export_fp32(lite_checkpoint(folder), folder / "export").onnx_path


def test_selection_spreads_over_the_split_and_warns_below_100(synth_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="fornet.int8"):
        picked = select_calibration_images(synth_root, "train", 3)
    every = select_calibration_images(synth_root, "train", 100).names
    assert len(every) == 6 and picked.names == [every[0], every[2], every[5]]
    assert all(name.startswith("leftImg8bit/train/") for name in picked.names)
    assert "only 3 calibration images" in caplog.text and "fewer than 100" in caplog.text


def test_fingerprint_follows_names_and_content(synth_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(synth_root, copy)
    original = select_calibration_images(synth_root, "train", 2)
    moved = select_calibration_images(copy, "train", 2)
    assert moved.fingerprint() == original.fingerprint(), "moving the folder keeps the fingerprint"
    moved.paths[0].write_bytes(moved.paths[0].read_bytes() + b"\0")
    assert moved.fingerprint() != original.fingerprint(), "editing an image changes it"


@pytest.mark.parametrize(("layout", "message"), [
    ("missing", "does not exist"),
    ("empty", "has no leftImg8bit/ folder"),
    ("flat", "has no leftImg8bit/ folder"),
    ("no_split", "split 'train' has no images"),
])
def test_bad_calibration_folders(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "flat":
        (root / "a_leftImg8bit.png").write_bytes(b"")
    if layout == "no_split":
        (root / "leftImg8bit" / "val" / "city").mkdir(parents=True)
    with pytest.raises(CalibrationDataError, match=f"no calibration images: .*{message}.*--calib-data"):
        select_calibration_images(root, "train", 10)


def test_zero_images_requested(synth_root: Path) -> None:
    with pytest.raises(CalibrationDataError, match="--calib-images must be at least 1"):
        select_calibration_images(synth_root, "train", 0)


def test_model_input_formats() -> None:
    image = np.zeros((32, 64, 3), np.uint8)
    image[..., 0] = 255
    normalised = model_input().batch([image])
    assert normalised.shape == (1, 3, *SIZE) and normalised.dtype == np.float32
    assert normalised[0, 0].mean() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
    raw = ModelInput(SIZE, (0.5,) * 3, (0.5,) * 3, raw=True, channel_order="BGR").batch([image])
    assert raw.shape == (1, *SIZE, 3) and raw.dtype == np.uint8
    assert raw[0, ..., 2].min() == 255 and raw[0, ..., 0].max() == 0, "red lands in the last (BGR) channel"
    assert model_input().describe().size == SIZE


def test_input_stats_per_channel() -> None:
    stats = InputStats()
    stats.update(np.stack([np.full((2, 2), v, np.float32) for v in (-1.0, 0.0, 2.0)])[None], channel_axis=1)
    stats.update(np.stack([np.full((2, 2), v, np.float32) for v in (1.0, 0.0, 4.0)])[None], channel_axis=1)
    assert stats.to_record() == ChannelStats(min=(-1.0, 0.0, 2.0), max=(1.0, 0.0, 4.0), mean=(0.0, 0.0, 3.0),
                                             values_per_channel=8)
    assert stats.mean.tolist() == [0.0, 0.0, 3.0] and stats.pixels == 8
    assert "channel 2: min 2.0000  max 4.0000  mean 3.0000" in stats.summary("image")


def _histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.histogram(np.abs(values), bins=2048)


def test_entropy_clips_outliers_but_not_uniform_data() -> None:
    rng = np.random.default_rng(0)
    gauss = np.concatenate([rng.standard_normal(200_000), [60.0, -80.0]])
    amax = entropy_amax(*_histogram(gauss))
    assert 3.0 < amax < 20.0, "the two outliers are clipped, the Gaussian body is kept"
    uniform = rng.uniform(-1, 1, 200_000)
    assert entropy_amax(*_histogram(uniform)) > 0.9, "nothing to clip in uniform data"


def test_entropy_ignores_the_zero_spike_of_relu_outputs() -> None:
    relu = np.maximum(np.random.default_rng(2).standard_normal(500_000), 0.0)
    assert entropy_amax(*_histogram(relu)) > 3.5, "half the values are 0: they must not pull the threshold to ~2"


def test_entropy_of_short_or_empty_histograms_is_the_maximum() -> None:
    edges = np.linspace(0, 5, 65)
    assert entropy_amax(np.ones(64), edges) == 5.0
    assert entropy_amax(np.zeros(4096), np.linspace(0, 3, 4097)) == 3.0


def test_entropy_merges_long_histograms() -> None:
    rng = np.random.default_rng(1)
    hist, edges = np.histogram(np.abs(rng.standard_normal(100_000)), bins=5000)
    coarse = entropy_amax(*np.histogram(np.abs(rng.standard_normal(100_000)), bins=2048, range=(0, edges[-1])))
    assert entropy_amax(hist, edges) == pytest.approx(coarse, rel=0.1)


def test_ranges_round_trip_and_errors(tmp_path: Path) -> None:
    ranges = ActivationRanges("entropy", METHOD_SETTINGS["entropy"], {"image": (-2.1, 2.6), "t": (0.0, 3.5)})
    path = ranges.save(tmp_path / "r.json")
    assert ActivationRanges.load(path) == ranges
    path.write_text('{"format": "other"}')
    with pytest.raises(CalibrationError, match=r"not a fornet-deploy INT8 calibration ranges file.*--recalibrate"):
        ActivationRanges.load(path)
    path.write_text('{"format": "fornet-deploy/int8-ranges/1", "method": "minmax", "settings": {}, '
                    '"ranges": {"image": [-2.1]}}')
    with pytest.raises(CalibrationError, match=r"damaged .* \(ranges\.image\.1: Field required\).*--recalibrate"):
        ActivationRanges.load(path)


def test_ranges_of_the_first_layout_load(tmp_path: Path) -> None:
    """A ranges file written before the settings were typed (only the method's own settings) loads."""
    path = tmp_path / "fornet_int8.ranges.json"
    path.write_text('{"format": "fornet-deploy/int8-ranges/1", "method": "entropy", '
                    '"settings": {"num_bins": 2048, "num_quantized_bins": 128}, "ranges": {"image": [-2.1, 2.6]}}')
    assert ActivationRanges.load(path) == ActivationRanges("entropy", METHOD_SETTINGS["entropy"],
                                                           {"image": (-2.1, 2.6)})


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_calibrate_records_conv_tensors(lite_onnx: Path, synth_root: Path, method: str, caplog) -> None:
    images = select_calibration_images(synth_root, "train", 2)
    with caplog.at_level(logging.INFO, logger="fornet.int8"):
        ranges, stats = calibrate(lite_onnx, images, model_input(), method, batch=1, progress=False)
    assert ranges.method == method and INPUT_NAME in ranges.ranges
    assert "/model/classifier/Conv_output_0" in ranges.ranges
    lo, hi = ranges.ranges[INPUT_NAME]
    assert -2.2 < lo < 0 < hi < 2.7, "the image range is that of a normalised input"
    assert all(lo <= hi for lo, hi in ranges.ranges.values())
    assert stats.pixels == 2 * SIZE[0] * SIZE[1]
    assert f"input {INPUT_NAME!r} statistics" in caplog.text


def test_histogram_methods_clip_within_the_minmax_range(lite_onnx: Path, synth_root: Path) -> None:
    images = select_calibration_images(synth_root, "train", 2)
    amax = {method: {name: max(map(abs, r)) for name, r in
                     calibrate(lite_onnx, images, model_input(), method, progress=False)[0].ranges.items()}
            for method in ("minmax", "percentile", "entropy")}
    assert set(amax["entropy"]) == set(amax["minmax"]) == set(amax["percentile"])
    for method in ("percentile", "entropy"):
        assert all(amax[method][n] <= amax["minmax"][n] * (1 + 1e-6) for n in amax["minmax"])
        clipped = [n for n in amax["minmax"] if amax[method][n] < 0.99 * amax["minmax"][n]]
        assert clipped, f"{method} clips some activation tails"


def test_unknown_method(lite_onnx: Path, synth_root: Path) -> None:
    with pytest.raises(CalibrationError, match="unknown calibration method 'kl'"):
        calibrate(lite_onnx, select_calibration_images(synth_root, "train", 1), model_input(), "kl", progress=False)
