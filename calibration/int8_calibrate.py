"""INT8 calibration: images of a Cityscapes-layout folder -> activation ranges of an ONNX model.

The images go through the project's one preprocessing (:func:`fornet.calibration.preprocess.preprocess`:
OpenCV bilinear resize to the export resolution, ImageNet-style normalisation) exactly as evaluation
feeds them, or, for a graph with in-graph normalisation (``--input raw``), through the same resize
only. ONNX Runtime's calibrators then run the FP32 graph and record the range of every input and
output of its convolutions (where the Q/DQ nodes go):

* ``entropy``: TensorRT's method: the clipping threshold with the minimum KL divergence between
  the 2048-bin histogram of ``|x|`` and its 128-level INT8 version. The histograms come from ONNX
  Runtime's histogram calibrator; the threshold search is :func:`entropy_amax` (vectorised:
  ``quantize_static(calibrate_method=Entropy)`` silently uses 128 bins, i.e. min/max, and ONNX
  Runtime's 2048-bin entropy search takes ~0.7 s per tensor in Python loops, ours ~0.08 s).
* ``percentile``: the 99.99th percentile of ``|x|`` (same histograms).
* ``minmax``: the largest ``|x|`` seen (sensitive to outliers, fastest).

While calibrating, per-channel min/max/mean of the fed input are accumulated and logged, so a
wrong channel order or normalisation shows up before anyone deploys (a normalised input has means
near 0 and values within about -2.2..2.7).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from fornet.calibration.cityscapes import DatasetError, find_split_images, read_image
from fornet.calibration.errors import DataError
from fornet.calibration.preprocess import CHANNEL_ORDERS, preprocess
from fornet.errors import RecordError
from fornet.records import Record

LOG = logging.getLogger("fornet.int8")

CALIB_METHODS = ("entropy", "percentile", "minmax")
#: Bins of the ``|x|`` histograms (entropy and percentile).
HISTOGRAM_BINS = 2048
#: INT8 levels the entropy search merges a histogram into.
ENTROPY_LEVELS = 128
#: Percentile of ``|x|`` taken as the range by the percentile method.
PERCENTILE = 99.99


@dataclass(frozen=True)
class MethodSettings:
    """The settings of a calibration method (None: the method has no such setting)."""

    num_bins: int | None = None
    num_quantized_bins: int | None = None
    percentile: float | None = None


#: Settings of each method (recorded in the manifest: a change means recalibrating).
METHOD_SETTINGS: dict[str, MethodSettings] = {
    "entropy": MethodSettings(num_bins=HISTOGRAM_BINS, num_quantized_bins=ENTROPY_LEVELS),
    "percentile": MethodSettings(num_bins=HISTOGRAM_BINS, percentile=PERCENTILE),
    "minmax": MethodSettings(),
}
#: Below this many images the ranges are noisy: a warning is logged.
RECOMMENDED_IMAGES = 100
#: Default number of calibration images (spread evenly over the split).
DEFAULT_CALIB_IMAGES = 500
#: Operator types whose inputs and outputs are calibrated (the ones that get Q/DQ nodes).
CALIBRATED_OP_TYPES = ("Conv",)


class CalibrationDataError(DataError):
    """The calibration folder is missing, empty or not in the Cityscapes layout."""


class CalibrationError(DataError):
    """Calibration could not run or its stored result cannot be read."""


class CalibrationRangesError(RecordError, CalibrationError):
    """A stored ranges file (``fornet_int8.ranges.json``) is missing, corrupt, foreign or newer."""


@dataclass(frozen=True)
class Preprocessing:
    """How calibration images become the graph input, in words and numbers (part of the calibration key)."""

    function: str
    resize: str
    size: tuple[int, int]
    input: str
    channel_order: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelInput:
    """How images become the ONNX graph's input (the export's resolution and input format).

    Attributes:
        size: ``(H, W)`` of the graph input.
        mean, std: normalisation in RGB order (for normalised input).
        raw: the graph takes uint8 ``N x H x W x 3`` frames and normalises itself.
        channel_order: channel order of raw frames (``RGB`` or ``BGR``).
    """

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    raw: bool = False
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise CalibrationError(f"channel order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")

    def describe(self) -> Preprocessing:
        """The preprocessing as recorded in the calibration key."""
        return Preprocessing(
            function="cv2.resize only (the graph normalises)" if self.raw
            else "fornet.calibration.preprocess.preprocess",
            resize="cv2.resize INTER_LINEAR (half-pixel bilinear, no antialias)",
            size=(int(self.size[0]), int(self.size[1])),
            input="raw uint8 NHWC, normalised in the graph" if self.raw else "normalised float32 NCHW",
            channel_order=self.channel_order if self.raw else "RGB",
            mean=tuple(float(m) for m in self.mean),
            std=tuple(float(s) for s in self.std),
        )

    def batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The graph input for RGB uint8 images of any size (resized to :attr:`size`)."""
        if not self.raw:
            return np.stack([preprocess(im, self.size, self.mean, self.std) for im in images])
        import cv2

        h, w = self.size
        frames = np.stack([im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
                           for im in images])
        return np.ascontiguousarray(frames[..., ::-1] if self.channel_order == "BGR" else frames)


@dataclass(frozen=True)
class CalibrationImages:
    """The images chosen for calibration.

    Attributes:
        root: the Cityscapes-layout folder.
        split: the split they come from.
        paths: the image files, in calibration order.
    """

    root: Path
    split: str
    paths: tuple[Path, ...]

    @property
    def names(self) -> list[str]:
        """The image paths relative to :attr:`root` (POSIX form)."""
        return [p.relative_to(self.root).as_posix() for p in self.paths]

    def fingerprint(self) -> str:
        """sha256 over every image's relative name and content: moving the folder keeps it,
        adding, removing, renaming or editing an image changes it."""
        digest = hashlib.sha256()
        for name, path in zip(self.names, self.paths, strict=True):
            digest.update(name.encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def select_calibration_images(root: str | os.PathLike[str], split: str = "train",
                              count: int = DEFAULT_CALIB_IMAGES) -> CalibrationImages:
    """Pick ``count`` images of ``split`` spread evenly over the sorted list (so every city appears).

    Raises:
        CalibrationDataError: ``count`` < 1, or a folder that is missing, empty or not laid out
            as ``<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png``.
    """
    if count < 1:
        raise CalibrationDataError(f"--calib-images must be at least 1, got {count}; "
                                   f"{DEFAULT_CALIB_IMAGES} (or every image of the split) is a good choice")
    try:
        paths = find_split_images(root, split)
    except DatasetError as exc:
        raise CalibrationDataError(f"no calibration images: {exc}; --calib-data must be a Cityscapes-layout "
                                   "folder (labels are not needed)") from exc
    if count < len(paths):
        picks = np.linspace(0, len(paths) - 1, count).round().astype(int)
        paths = [paths[i] for i in picks]
    if len(paths) < RECOMMENDED_IMAGES:
        LOG.warning("only %d calibration images (split %r of %s): INT8 ranges from fewer than %d images are "
                    "noisy; point --calib-data at more images of the deployment domain", len(paths), split, root,
                    RECOMMENDED_IMAGES)
    return CalibrationImages(root=Path(root), split=split, paths=tuple(paths))


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel min / max / mean of the fed input (rounded to 6 digits), and the values per channel."""

    min: tuple[float, ...]
    max: tuple[float, ...]
    mean: tuple[float, ...]
    values_per_channel: int


@dataclass
class InputStats:
    """Per-channel min / max / mean of everything fed to the graph input."""

    pixels: int = 0
    minimum: np.ndarray = field(default_factory=lambda: np.empty(0))
    maximum: np.ndarray = field(default_factory=lambda: np.empty(0))
    total: np.ndarray = field(default_factory=lambda: np.empty(0))

    def update(self, batch: np.ndarray, channel_axis: int) -> None:
        """Add a batch whose channels lie on ``channel_axis``."""
        values = np.moveaxis(batch, channel_axis, 0).reshape(batch.shape[channel_axis], -1).astype(np.float64)
        if self.pixels == 0:
            self.minimum = values.min(axis=1)
            self.maximum = values.max(axis=1)
            self.total = values.sum(axis=1)
        else:
            self.minimum = np.minimum(self.minimum, values.min(axis=1))
            self.maximum = np.maximum(self.maximum, values.max(axis=1))
            self.total = self.total + values.sum(axis=1)
        self.pixels += values.shape[1]

    @property
    def mean(self) -> np.ndarray:
        """Per-channel mean."""
        return self.total / max(self.pixels, 1)

    def to_record(self) -> ChannelStats:
        """The statistics as the manifest records them."""
        def rounded(values: np.ndarray) -> tuple[float, ...]:
            return tuple(round(float(v), 6) for v in values)

        return ChannelStats(rounded(self.minimum), rounded(self.maximum), rounded(self.mean), self.pixels)

    def summary(self, name: str) -> str:
        """One line per channel for the log."""
        rows = [f"input {name!r} statistics over {self.pixels} values per channel:"]
        rows += [f"  channel {c}: min {lo:.4f}  max {hi:.4f}  mean {mu:.4f}"
                 for c, (lo, hi, mu) in enumerate(zip(self.minimum, self.maximum, self.mean, strict=True))]
        return "\n".join(rows)


@dataclass(frozen=True)
class ActivationRanges(Record):
    """``fornet_int8.ranges.json``: calibrated ``(min, max)`` of each tensor of the FP32 graph, by ONNX tensor name."""

    FORMAT: ClassVar[str] = "fornet-deploy/int8-ranges"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy INT8 calibration ranges file"
    FIX: ClassVar[str] = "calibrate again (fornet-export ... --int8 --recalibrate)"
    ERROR: ClassVar[type[RecordError]] = CalibrationRangesError

    method: str
    settings: MethodSettings
    ranges: dict[str, tuple[float, float]]


class _OneBatch:
    """An ONNX Runtime ``CalibrationDataReader`` that serves one feed."""

    def __init__(self, feed: dict[str, np.ndarray]) -> None:
        self._feed: dict[str, np.ndarray] | None = feed

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed, self._feed = self._feed, None
        return feed


def _create_calibrator(onnx_path: Path, method: str, workdir: Path) -> Any:
    """ONNX Runtime's MinMax calibrator, or its |x|-histogram (percentile) calibrator, whose
    histograms also feed :func:`entropy_amax`."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    if method == "minmax":
        enum, options = CalibrationMethod.MinMax, {}
    else:
        enum = CalibrationMethod.Percentile
        options = {"num_bins": HISTOGRAM_BINS, "symmetric": True, "percentile": PERCENTILE}
    return create_calibrator(onnx_path, list(CALIBRATED_OP_TYPES), augmented_model_path=str(workdir / "augmented.onnx"),
                             calibrate_method=enum, extra_options=options)


def entropy_amax(hist: np.ndarray, edges: np.ndarray, num_bins: int = HISTOGRAM_BINS,
                 num_quantized_bins: int = ENTROPY_LEVELS) -> float:
    """TensorRT's entropy threshold for a histogram of ``|x|``: the bin edge ``t`` that minimises
    ``KL(P || Q)``, where ``P`` is the histogram up to ``t`` with everything above ``t`` added to
    its last bin (clipping) and ``Q`` is that part merged into ``num_quantized_bins`` INT8 levels
    and spread back over the non-empty bins.

    Exact zeros (the first bin when the histogram starts at 0) are left out: symmetric INT8
    represents 0 exactly, and after a ReLU they are half of all values, a spike that would
    otherwise dominate the divergence and pull the threshold down to about two standard deviations
    (measured on the trained lite model: 7.8 mIoU points lost with the zeros, 0.08 without; see
    ``benchmarks/int8_results.md``), like the ``skip_zeros`` option of NVIDIA's pytorch-quantization
    histogram calibrator.

    Histograms longer than ``num_bins`` (ONNX Runtime widens them as larger values arrive) are
    merged down to at most ``num_bins`` bins first. Every candidate is evaluated with vectorised
    NumPy (ONNX Runtime's own entropy search loops in Python: about 9x slower).
    """
    counts = np.asarray(hist, dtype=np.float64).copy()
    edges = np.asarray(edges, dtype=np.float64)
    if edges[0] <= 0.0:
        counts[0] = 0.0
    factor = -(-counts.size // num_bins)
    if factor > 1:
        counts = np.pad(counts, (0, factor * num_bins - counts.size)).reshape(num_bins, factor).sum(axis=1)
        edges = edges[0] + (edges[1] - edges[0]) * factor * np.arange(num_bins + 1)
    total = counts.sum()
    if counts.size <= num_quantized_bins or total == 0:
        return float(edges[-1])
    tails = np.concatenate([np.cumsum(counts[::-1])[::-1], [0.0]])
    eps = 1e-4
    best, best_kl = counts.size, np.inf
    for i in range(num_quantized_bins, counts.size + 1):
        part = counts[:i]
        p = part.copy()
        p[-1] += tails[i]
        nonzero = p > 0
        starts = (np.arange(num_quantized_bins) * i) // num_quantized_bins
        level_sums = np.add.reduceat(part, starts)
        level_nonzero = np.add.reduceat(nonzero.astype(np.float64), starts)
        per_bin = np.divide(level_sums, level_nonzero, out=np.zeros_like(level_sums), where=level_nonzero > 0)
        q = np.repeat(per_bin, np.diff(np.append(starts, i))) * nonzero
        p, q = p / total, q / max(q.sum(), 1e-300)
        q_at_p = np.maximum(q[nonzero], eps * p[nonzero])
        kl = float(np.sum(p[nonzero] * np.log(p[nonzero] / q_at_p)))
        if kl < best_kl:
            best, best_kl = i, kl
    return float(edges[best])


def _ranges_of(calibrator: Any, method: str) -> dict[str, tuple[float, float]]:
    if method != "entropy":
        computed = calibrator.compute_data().data
        return {name: tuple(float(np.asarray(v).reshape(-1)[0]) for v in data.range_value)  # type: ignore[misc]
                for name, data in computed.items()}
    ranges: dict[str, tuple[float, float]] = {}
    for name, (hist, edges, low, high) in calibrator.collector.get_histogram_dict().items():
        amax = entropy_amax(hist, edges)
        ranges[name] = (max(float(low), -amax), min(float(high), amax))
    return ranges


def image_batches(images: CalibrationImages, batch: int) -> Iterator[list[np.ndarray]]:
    """The images read as RGB, ``batch`` at a time; the last batch repeats its last image."""
    paths = list(images.paths)
    for start in range(0, len(paths), batch):
        chunk = [read_image(p) for p in paths[start:start + batch]]
        yield chunk + [chunk[-1]] * (batch - len(chunk))


def _check_finite(ranges: Mapping[str, tuple[float, float]]) -> None:
    for name, (lo, hi) in ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise CalibrationError(f"tensor {name!r} reached a non-finite value ({lo}, {hi}) during calibration; "
                                   "check the checkpoint with fornet-eval (NaN/inf activations) before INT8 export")


def calibrate(onnx_path: str | os.PathLike[str], images: CalibrationImages, model_input: ModelInput,
              method: str = "entropy", batch: int = 1, input_name: str = "image",
              progress: bool = True) -> tuple[ActivationRanges, InputStats]:
    """Run the FP32 graph on the calibration images and compute the activation ranges.

    Args:
        onnx_path: the FP32 graph (``fornet.onnx``).
        images: from :func:`select_calibration_images`.
        model_input: the graph's input size and format.
        method: one of :data:`CALIB_METHODS`.
        batch: images per run (the graph's static batch; the last run repeats its last image).
        input_name: the graph input.
        progress: show a progress bar.

    Returns:
        The ranges and the statistics of the fed input (also logged).

    Raises:
        CalibrationError: unknown method, unreadable graph or non-finite activations.
        DatasetError: an unreadable image.
    """
    if method not in CALIB_METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIB_METHODS)}")
    stats = InputStats()
    runs = math.ceil(len(images.paths) / batch)
    with tempfile.TemporaryDirectory(prefix="fornet-calib-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        # ONNX Runtime's calibrators print progress lines of their own: they are silenced.
        try:
            calibrator = _create_calibrator(Path(onnx_path), method, Path(tmp))
        except Exception as exc:  # onnx / onnxruntime raise their own types
            raise CalibrationError(f"ONNX Runtime cannot prepare {onnx_path} for calibration ({exc}); "
                                   "export the FP32 graph again") from exc
        bar = tqdm(image_batches(images, batch), total=runs, desc=f"calibrating ({method})", unit="batch",
                   disable=not progress)
        for chunk in bar:
            feed = model_input.batch(chunk)
            stats.update(feed, channel_axis=3 if model_input.raw else 1)
            calibrator.collect_data(_OneBatch({input_name: feed}))
        ranges = _ranges_of(calibrator, method)
    LOG.info(stats.summary(input_name))
    _check_finite(ranges)
    return ActivationRanges(method=method, settings=METHOD_SETTINGS[method], ranges=ranges), stats
