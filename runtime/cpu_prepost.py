"""CPU pre- and post-processing of camera frames (NumPy/OpenCV): the reference for the CUDA kernels.

Frames are uint8 ``H x W x 3`` BGR images of any size (OpenCV's convention).

Pre: :func:`fornet.calibration.preprocess.preprocess` (OpenCV ``INTER_LINEAR`` resize to the
network size, BGR -> RGB, ``(x / 255 - mean) / std``, CHW), cast to the model's input dtype; for
raw-input models (normalisation in the graph) only the same resize and the channel order.

Post, chosen for speed and matched exactly by ``prepost.cu``: the argmax over the classes at the
network's (logit) resolution, then a nearest-neighbour resize of the labels to the frame size with
half-pixel centres, ``src = floor((2 * dst + 1) * in / (2 * out))`` in integers (what
``torch.nn.functional.interpolate(mode="nearest-exact")`` and ``cv2.INTER_NEAREST_EXACT`` do). The
alternative, upsampling the scores bilinearly to the frame size before the argmax (what
``fornet-eval`` does), smooths class boundaries by at most one network pixel but reads
``classes x H x W`` floats at the frame size: 4x the work for a 2x upscale. When network and
frame sizes are equal both are the same.

Overlay: ``(frame * (256 - a) + colour * a + 128) >> 8`` per channel with ``a = round(alpha * 256)``;
pixels whose label has no colour keep the frame's value.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    return np.stack(images)


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


def postprocess(output: np.ndarray, frame_size: tuple[int, int], io: ModelIO) -> np.ndarray:
    """uint8 labels at ``frame_size`` from one image's network output (scores or labels)."""
    if io.labels_output:
        values = np.asarray(output)
        labels = np.where((values >= 0) & (values <= 255), values, 255).astype(np.uint8)
    else:
        labels = argmax_labels(output)
    return resize_labels(labels, frame_size)


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
