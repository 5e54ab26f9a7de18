"""CPU pre- and post-processing of camera frames (NumPy/OpenCV): the reference for the CUDA kernels.

Frames are uint8 ``H x W x 3`` BGR images of any size (OpenCV's convention).

Pre: :func:`fornet.calibration.preprocess.preprocess` (OpenCV ``INTER_LINEAR`` resize to the
network size, BGR -> RGB, ``(x / 255 - mean) / std``, CHW), cast to the model's input dtype; for
raw-input models (normalisation in the graph) only the same resize and the channel order.

Post: the class scores are upsampled bilinearly to the frame size and the label of each pixel is
their argmax (what ``fornet-eval`` does, and ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)`` / ``cv2.INTER_LINEAR`` sample: half-pixel centres, the source coordinate
clamped at 0 and the neighbour at the last pixel). The arithmetic is defined exactly, so the CUDA
kernels in ``prepost.cu`` give the same labels bit for bit: scores in float32; per output
coordinate ``src = max((dst + 0.5) * (in / out) - 0.5, 0)`` in double, ``i0 = min(floor(src),
in - 1)``, ``i1 = min(i0 + 1, in - 1)``, ``w1 = float32(src - i0)``, ``w0 = 1 - w1`` in float32; the
value ``wy0 * (wx0 * s00 + wx1 * s01) + wy1 * (wx0 * s10 + wx1 * s11)``, each operation rounded to
float32 (no fused multiply-add); ties go to the lower class and the first NaN wins, as in
:func:`numpy.argmax`. :func:`upsampled_argmax` computes exactly that from
:func:`upsample_scores` (``classes x H x W`` floats at the frame size, the reference);
:func:`upsampled_labels` is the fast path with the same output: a pixel whose four low-resolution
neighbours share one argmax by a margin that float32 rounding cannot overturn takes that label (a
convex combination of score vectors keeps a common argmax), and only the remaining pixels, along
class boundaries, interpolate the scores. Engines that output labels are resized nearest-neighbour
with half-pixel centres, ``src = floor((2 * dst + 1) * in / (2 * out))`` in integers (what
``interpolate(mode="nearest-exact")`` and ``cv2.INTER_NEAREST_EXACT`` do). When network and frame
sizes are equal all of these are the plain argmax.

Overlay: ``(frame * (256 - a) + colour * a + 128) >> 8`` per channel with ``a = round(alpha * 256)``;
pixels whose label has no colour keep the frame's value.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from fornet.calibration.preprocess import check_image, preprocess
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.model_io import ModelIO


class FrameError(FornetRuntimeError):
    """A frame that is not a uint8 H x W x 3 BGR image, or a bad overlay argument."""


def preprocess_frame(frame: np.ndarray, io: ModelIO) -> np.ndarray:
    """One network input image (``3 x H x W`` normalised, or ``H x W x 3`` uint8 for raw input)."""
    if not io.raw_input:
        chw = preprocess(frame, io.input_size, io.mean, io.std, channel_order="BGR")
        return chw if io.input_dtype == np.float32 else chw.astype(io.input_dtype)
    import cv2

    h, w = io.input_size
    resized = frame if frame.shape[:2] == (h, w) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[:, :, ::-1] if io.channel_order == "RGB" else resized)


def preprocess_frames(frames: Sequence[np.ndarray], io: ModelIO, batch: int | None = None) -> np.ndarray:
    """Stack the network inputs of ``frames``; with ``batch`` pad to that many by repeating the last."""
    images = [preprocess_frame(frame, io) for frame in frames]
    if batch is not None:
        images += [images[-1]] * (batch - len(images))
    return images[0][None] if len(images) == 1 else np.stack(images)  # one frame: a view, no copy


def argmax_labels(scores: np.ndarray) -> np.ndarray:
    """uint8 ``H x W`` index of the highest of ``C x H x W`` scores, exactly ``scores.argmax(0)``.

    Ties go to the lower class and the first NaN wins, as in :func:`numpy.argmax`. One branch-free
    pass per class (``labels ^= (labels ^ c) * higher``) is about ten times faster than
    ``argmax(0)``, which walks a ``C x H x W`` array with a stride of ``H x W``.
    """
    if scores.ndim != 3 or not 1 <= scores.shape[0] <= 256:
        raise FrameError(f"expected C x H x W class scores with 1..256 classes, got shape {scores.shape}")
    best = scores[0].copy()
    labels = np.zeros(scores.shape[1:], dtype=np.uint8)
    higher = np.empty(scores.shape[1:], dtype=bool)
    change = np.empty(scores.shape[1:], dtype=np.uint8)
    for c in range(1, scores.shape[0]):
        np.greater(scores[c], best, out=higher)
        np.maximum(best, scores[c], out=best)  # NaN propagates: marks the pixels fixed below
        np.bitwise_xor(labels, np.uint8(c), out=change)
        np.multiply(change, higher, out=change)
        np.bitwise_xor(labels, change, out=labels)
    nan = np.isnan(best)
    if nan.any():
        labels[nan] = np.argmax(scores[:, nan], axis=0)
    return labels


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each of ``size_out`` positions, half-pixel nearest: ``(2 i + 1) in // (2 out)``."""
    index = ((2 * np.arange(size_out, dtype=np.int64) + 1) * size_in) // (2 * size_out)
    return np.minimum(index, size_in - 1)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize (half-pixel centres) of an ``h x w`` label map to ``(H, W)``."""
    h, w = labels.shape
    if (h, w) == tuple(size):
        return labels
    return labels.take(nearest_indices(h, size[0]), axis=0).take(nearest_indices(w, size[1]), axis=1)


@dataclass(frozen=True)
class LinearTaps:
    """The two source indices and float32 weights of each output coordinate of a bilinear resize."""

    low: np.ndarray
    high: np.ndarray
    weight_low: np.ndarray
    weight_high: np.ndarray


    def part(self, start: int, stop: int) -> LinearTaps:
        """The taps of outputs ``start`` to ``stop`` (exclusive)."""
        return LinearTaps(self.low[start:stop], self.high[start:stop], self.weight_low[start:stop],
                          self.weight_high[start:stop])

    def shifted(self, offset: int) -> LinearTaps:
        """The same taps indexing a source cut ``offset`` entries later."""
        return LinearTaps(self.low - offset, self.high - offset, self.weight_low, self.weight_high)


def linear_taps(size_in: int, size_out: int) -> LinearTaps:
    """Half-pixel bilinear taps, computed as the module docstring defines (and ``prepost.cu`` does)."""
    source = np.maximum((np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    weight_high = (source - low).astype(np.float32)
    return LinearTaps(low, np.minimum(low + 1, size_in - 1), np.float32(1) - weight_high, weight_high)


def _check_scores(scores: np.ndarray) -> np.ndarray:
    if scores.ndim != 3 or not 1 <= scores.shape[0] <= 256:
        raise FrameError(f"expected C x H x W class scores with 1..256 classes, got shape {scores.shape}")
    return np.asarray(scores, dtype=np.float32)


def upsample_scores(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``C x H x W`` float32 bilinear resize of ``C x h x w`` scores to ``size`` (the module docstring's rule).

    At the scores' own size nothing is resized (no ``0 * inf`` from a zero weight).
    """
    scores = _check_scores(scores)
    if scores.shape[1:] == tuple(size):
        return scores
    return _resize(scores, linear_taps(scores.shape[1], size[0]), linear_taps(scores.shape[2], size[1]))


def _resize(scores: np.ndarray, rows: LinearTaps, cols: LinearTaps) -> np.ndarray:
    """The output rows ``rows`` and columns ``cols`` of the bilinear resize of ``scores``."""
    with np.errstate(invalid="ignore", over="ignore"):  # infinities and NaN scores follow IEEE
        across = _weighted(scores, cols.low, cols.weight_low, axis=2)
        across += _weighted(scores, cols.high, cols.weight_high, axis=2)
        out = _weighted(across, rows.low, rows.weight_low, axis=1)
        out += _weighted(across, rows.high, rows.weight_high, axis=1)
    return out


def _weighted(values: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """``values`` taken at ``index`` along ``axis``, each taken entry times its ``weight`` (a new array, scaled
    in place: one rounding, as the module docstring's arithmetic has it)."""
    taken = values.take(index, axis=axis)
    taken *= weight.reshape(weight.shape + (1,) * (values.ndim - axis - 1))
    return taken


def upsampled_argmax(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 labels at ``size``: the argmax of :func:`upsample_scores` (the reference of the fast path)."""
    return argmax_labels(upsample_scores(scores, size))


#: Scores beyond this magnitude (and NaN, infinities) send their neighbourhood to the exact path: far
#: from float32's range, no sum of two weighted scores can overflow.
_SAFE_MAGNITUDE = np.float32(2.0**100)
#: A common argmax survives float32 interpolation when every other class is below it by more than
#: ``2**-20`` of the largest magnitude of the argmax's scores in the cell, plus the smallest normal float32
#: (underflow). Each interpolated score is off by at most ``4 * 2**-24`` of the weighted magnitudes it mixes
#: (four roundings), the argmax's and a rival's together by under ``8 * 2**-24`` of the argmax's
#: magnitude plus the rival's own margin, so twice that bound is left to spare.
_MARGIN_RELATIVE = np.float32(2.0**-20)
_MARGIN_ABSOLUTE = np.float32(2.0**-126)
T = TypeVar("T")
#: Threads of the post-processing bands (the usable CPUs, at most 4), the bands each thread takes, and the
#: fewest rows worth a band. Two bands per thread measured fastest on a 1024x2048 frame (512x1024 scores,
#: 2 vCPUs): smaller planes stay in cache, while more, smaller bands lose to the per-call overhead and to
#: the threads' contention for the GIL between NumPy calls.
_POST_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
_BANDS_PER_THREAD = 2
_MIN_BAND_ROWS = 64
#: The label code of a network pixel or cell that must be interpolated.
_OPEN = np.uint8(255)


#: Morphology footprints: a cell (a pixel, its right, lower and lower-right neighbours: anchored at its top
#: left) and a pixel's 3 x 3 neighbourhood (every cell that holds the pixel).
_CELL = np.ones((2, 2), np.uint8)
_NEIGHBOURHOOD = np.ones((3, 3), np.uint8)


def _cell_extremes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest uint8 label of each cell, its neighbours clamped at the edges (OpenCV's erode and
    dilate: exact, and ten times faster than shifted NumPy minima)."""
    import cv2

    def extreme(operation: Callable[..., np.ndarray]) -> np.ndarray:
        return operation(labels, _CELL, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)

    return extreme(cv2.erode), extreme(cv2.dilate)


def _neighbourhood_max(values: np.ndarray) -> np.ndarray:
    """The float32 maximum over each pixel's 3 x 3 neighbourhood, clamped at the edges (OpenCV's dilate)."""
    import cv2

    return cv2.dilate(values, _NEIGHBOURHOOD, borderType=cv2.BORDER_REPLICATE)


def _certain_labels(scores: np.ndarray) -> np.ndarray:
    """Per network pixel: its argmax where no other class comes within the margin, else ``_OPEN``.

    The margin uses the largest argmax magnitude of the 3 x 3 neighbourhood, so it covers every cell the
    pixel belongs to. One comparison and two uint8 additions per class: exactly one class (the argmax)
    at or above ``best - margin`` means a certain label, which is then the sum of ``class * near``.
    Element-wise loops with ``out=`` (a third faster than ``max(axis=0)``'s reduction) and the comparison
    read as uint8 (a bool operand costs a cast).
    """
    best, lowest = scores[0].copy(), scores[0].copy()
    for plane in scores[1:]:
        np.maximum(best, plane, out=best)  # NaN propagates: not moderate
        np.minimum(lowest, plane, out=lowest)
    moderate = (lowest >= -_SAFE_MAGNITUDE) & (best <= _SAFE_MAGNITUDE)
    magnitude = _neighbourhood_max(np.where(moderate, np.abs(best), np.float32(0)))
    with np.errstate(invalid="ignore"):  # inf - inf where not moderate
        limit = best - (magnitude * _MARGIN_RELATIVE + _MARGIN_ABSOLUTE)
    near = np.empty(best.shape, dtype=bool)
    near_count = near.view(np.uint8)
    count = np.zeros(best.shape, dtype=np.uint8)
    label = np.zeros(best.shape, dtype=np.uint8)
    term = np.empty(best.shape, dtype=np.uint8)
    for c in range(scores.shape[0]):
        np.greater_equal(scores[c], limit, out=near)
        np.add(count, near_count, out=count)
        np.multiply(near_count, np.uint8(c), out=term)
        np.add(label, term, out=label)
    return np.where(moderate & (count == 1), label, _OPEN)


def _certain_labels_in_bands(scores: np.ndarray) -> np.ndarray:
    """:func:`_certain_labels` of the whole map, computed in row bands (:func:`_in_bands`). Each band is given
    one row of its neighbours' on either side, so its 3 x 3 neighbourhoods are the whole map's: the labels
    are the same."""
    height = scores.shape[1]

    def band(top: int, bottom: int) -> np.ndarray:
        low, high = max(top - 1, 0), min(bottom + 1, height)
        return _certain_labels(scores[:, low:high])[top - low:top - low + bottom - top]

    return np.concatenate(_in_bands(height, band))


def _in_bands(height: int, work: Callable[[int, int], T]) -> list[T]:
    """``work(top, bottom)`` of consecutive row bands covering ``height`` rows, :data:`_BANDS_PER_THREAD` per
    post thread, each at least :data:`_MIN_BAND_ROWS` rows, run on the post threads (NumPy's loops release the
    GIL)."""
    bands = max(1, min(_POST_THREADS * _BANDS_PER_THREAD, height // _MIN_BAND_ROWS))
    edges = [height * index // bands for index in range(bands + 1)]
    spans = list(itertools.pairwise(edges))
    if bands == 1:
        return [work(*spans[0])]
    return list(_post_executor().map(lambda span: work(*span), spans))


def post_threads() -> int:
    """How many threads the CPU post-processing runs its row bands on (the usable CPUs, at most 4)."""
    return _POST_THREADS


@functools.cache
def _post_executor() -> ThreadPoolExecutor:
    """The post-processing threads (one per usable CPU, up to :data:`_POST_THREADS`), made on first use."""
    return ThreadPoolExecutor(max_workers=_POST_THREADS, thread_name_prefix="fornet-post")


def certain_cells(scores: np.ndarray) -> np.ndarray:
    """Per cell (a network pixel and its right, lower and lower-right neighbours): the label every frame
    pixel between them takes for certain, or 255 where the fast path interpolates."""
    certain = _certain_labels_in_bands(scores)
    lowest, highest = _cell_extremes(certain)
    return np.where(lowest == highest, certain, _OPEN)


def upsampled_labels(scores: np.ndarray, size: tuple[int, int], full_path_above: float = 0.25) -> np.ndarray:
    """uint8 labels at ``size``, equal to :func:`upsampled_argmax` bit for bit, interpolating only boundaries.

    A cell of four neighbouring network pixels whose scores are all moderate and share one argmax, with
    a margin float32 rounding cannot overturn (see ``_MARGIN_RELATIVE``), gives every frame pixel
    between them that label; the other frame pixels interpolate their scores exactly as the reference
    does and take the argmax. (Label 255 of a 256-class model always takes the exact path.) Where more
    than ``full_path_above`` of a band's pixels need interpolating (noise-like scores), interpolating
    them one by one is slower than resizing the band, and that runs instead: the same labels. The
    frame's rows are labelled in bands on the post-processing threads.
    """
    scores = _check_scores(scores)
    _, h, w = scores.shape
    if (h, w) == tuple(size):
        return argmax_labels(scores)
    rows, cols = linear_taps(h, size[0]), linear_taps(w, size[1])
    cells = certain_cells(scores)
    out = np.empty(size, dtype=np.uint8)
    _in_bands(size[0], lambda top, bottom: _label_rows(scores, cells, rows.part(top, bottom), cols,
                                                       out[top:bottom], full_path_above))
    return out


def _label_rows(scores: np.ndarray, cells: np.ndarray, rows: LinearTaps, cols: LinearTaps, out: np.ndarray,
                full_path_above: float) -> None:
    """Write the labels of the frame rows ``rows`` into ``out`` (see :func:`upsampled_labels`)."""
    classes, _, w = scores.shape
    out[...] = cells.take(rows.low, axis=0).take(cols.low, axis=1)
    open_pixels = out == _OPEN
    if np.count_nonzero(open_pixels) > full_path_above * out.size:
        first, last = int(rows.low.min()), int(rows.high.max())
        out[...] = argmax_labels(_resize(scores[:, first:last + 1], rows.shifted(first), cols))
        return
    ys, xs = np.divmod(np.flatnonzero(open_pixels), out.shape[1])  # flatnonzero: 4x faster than nonzero
    if len(ys):
        flat = scores.reshape(classes, -1)
        top, bottom = rows.low[ys] * w, rows.high[ys] * w
        left, right = cols.low[xs], cols.high[xs]
        wx0, wx1 = cols.weight_low[xs], cols.weight_high[xs]
        with np.errstate(invalid="ignore", over="ignore"):  # as in upsample_scores, in place
            upper = _weighted(flat, top + left, wx0, axis=1)
            upper += _weighted(flat, top + right, wx1, axis=1)
            upper *= rows.weight_low[ys]
            lower = _weighted(flat, bottom + left, wx0, axis=1)
            lower += _weighted(flat, bottom + right, wx1, axis=1)
            lower *= rows.weight_high[ys]
            upper += lower
        out[ys, xs] = argmax_labels(upper[:, None, :])[0]


def postprocess(output: np.ndarray, frame_size: tuple[int, int], io: ModelIO) -> np.ndarray:
    """uint8 labels at ``frame_size`` from one image's network output (scores or labels)."""
    if io.labels_output:
        values = np.asarray(output)
        labels = np.where((values >= 0) & (values <= 255), values, 255).astype(np.uint8)
        return resize_labels(labels, frame_size)
    return upsampled_labels(output, frame_size)


def alpha_to_256(alpha: float) -> int:
    """The overlay weight in 256ths (0 = frame only, 256 = colours only)."""
    if not 0.0 <= alpha <= 1.0:
        raise FrameError(f"overlay alpha must be in [0, 1], got {alpha}")
    return round(alpha * 256)


def overlay(frame: np.ndarray, labels: np.ndarray, palette_bgr: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The frame blended with the colour of each pixel's class (BGR uint8, the frame's size)."""
    check_image(frame, "frame")
    if labels.shape != frame.shape[:2] or labels.dtype.kind not in "ui":
        raise FrameError(f"labels must be an integer array of the frame's size {frame.shape[:2]}, got shape "
                         f"{labels.shape} dtype {labels.dtype}; pass what the segmenter returned for this frame")
    a = alpha_to_256(alpha)
    coloured = labels < len(palette_bgr)
    colours = palette_bgr[np.where(coloured, labels, 0)].astype(np.int32)
    blended = (frame.astype(np.int32) * (256 - a) + colours * a + 128) >> 8
    return np.where(coloured[..., None], blended, frame).astype(np.uint8)
