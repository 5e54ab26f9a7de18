"""Segmentation metrics that follow the official Cityscapes evaluator, and backend parity checks.

Everything here is NumPy only (OpenCV is imported lazily to write PNGs), so the same code scores
PyTorch, ONNX Runtime and TensorRT predictions on a server or a Jetson.

Conventions (those of ``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``):

* Predictions and targets are *trainIds*. Pixels whose target is ``ignore_index`` are excluded
  everywhere, so a prediction on an ignored pixel is never a false positive.
* A prediction outside ``[0, num_classes)`` (e.g. 255) on a valid pixel is a miss: a false
  negative of the true class and a false positive of no class. The official evaluator does the
  same with labelIds that are not evaluated (e.g. 0, "unlabeled").
* ``IoU_c = TP / (TP + FP + FN)`` from one confusion matrix accumulated over the whole split,
  not the mean of per-image IoUs.
* A class absent from the ground truth but predicted somewhere gets IoU 0 and counts in the mean;
  a class absent from both has ``TP + FP + FN = 0``, IoU NaN, and is left out of the mean. mIoU is
  the mean over the non-NaN classes (the official ``getScoreAverage``), NaN if all are NaN.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fornet.atomic import write_bytes_atomic
from fornet.calibration.errors import DataError
from fornet.calibration.labels import train_ids_to_label_ids


class MetricsError(DataError):
    """Predictions or targets that cannot be scored (wrong shape, dtype or value range)."""


@dataclass(frozen=True)
class ScoreSummary:
    """The scores of one confusion matrix as records keep them: mIoU, pixel accuracy and per-class IoU
    (None where undefined, i.e. NaN), and the counts."""

    num_classes: int
    ignore_index: int
    pixels: int
    miou: float | None
    pixel_accuracy: float | None
    iou: dict[str, float | None]
    #: ``[target class][predicted class]`` pixel counts.
    confusion_matrix: tuple[tuple[int, ...], ...]
    #: Per target class, pixels predicted outside ``[0, num_classes)``.
    invalid_predictions: tuple[int, ...]


@dataclass(frozen=True)
class ParitySummary:
    """How two predictors agree, as records keep it (None where undefined); ``text`` is :meth:`ParityReport.summary`."""

    names: tuple[str, str]
    boundary_width: int
    pixels: int
    agreement: float | None
    boundary_pixels: int
    boundary_agreement: float | None
    miou_delta: float | None
    iou_delta: dict[str, float | None]
    text: str


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _as_label_array(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as an integer array of shape HxW or NxHxW, or a :class:`MetricsError`."""
    a = np.asarray(a)
    if a.dtype.kind not in "ui":
        raise MetricsError(f"{what} must be an integer array of trainIds, got dtype {a.dtype}; "
                           "take the argmax over the class axis of the logits first")
    if a.ndim not in (2, 3):
        raise MetricsError(f"{what} must have shape HxW or NxHxW, got shape {a.shape}; "
                           "drop the channel axis (argmax over classes) or stack images on axis 0")
    return a


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise MetricsError(f"shapes differ ({listed}); predictions must be at the label's resolution: "
                           "upsample the logits to the label size before the argmax")


class ConfusionMatrix:
    """A ``num_classes`` x ``num_classes`` pixel confusion matrix (rows: ground truth).

    Accumulate with :meth:`update` over a whole split, then read :meth:`iou`, :meth:`miou` and
    :meth:`pixel_accuracy`. Two matrices built on disjoint parts of a split combine with
    :meth:`merge`.
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise MetricsError(f"num_classes must be positive, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise MetricsError(f"ignore_index {ignore_index} is one of the {num_classes} classes; "
                               "use a value outside [0, num_classes), such as 255")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # The last column counts valid pixels whose prediction is outside [0, num_classes).
        self._counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """``C x C`` int64 counts; ``matrix[g, p]`` = valid pixels of class ``g`` predicted as ``p``."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def invalid_predictions(self) -> np.ndarray:
        """Per ground-truth class, valid pixels predicted with a value outside ``[0, C)`` (misses)."""
        return self._counts[:, self.num_classes].copy()

    @property
    def total_pixels(self) -> int:
        """Number of scored (non-ignored) pixels seen so far."""
        return int(self._counts.sum())

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one image (HxW) or a batch (NxHxW) of trainId predictions and targets.

        Raises:
            MetricsError: non-integer arrays, shapes that differ or are not HxW/NxHxW, or a target
                value that is neither a class nor ``ignore_index`` (labelIds passed by mistake).
        """
        pred = _as_label_array(pred, "pred")
        target = _as_label_array(target, "target")
        _check_same_shape(pred=pred, target=target)
        valid = target != self.ignore_index
        t = target[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= self.num_classes):
            bad = t[(t < 0) | (t >= self.num_classes)][0]
            raise MetricsError(
                f"target holds value {bad}, which is neither a class in 0..{self.num_classes - 1} nor "
                f"the ignore index {self.ignore_index}; targets must be trainIds: convert labelIds "
                "with fornet.calibration.labels.label_ids_to_train_ids"
            )
        p[(p < 0) | (p >= self.num_classes)] = self.num_classes
        width = self.num_classes + 1
        counts = np.bincount(t * width + p, minlength=self.num_classes * width)
        self._counts += counts.reshape(self.num_classes, width)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts to this matrix (in place) and return ``self``."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise MetricsError(
                f"cannot merge a matrix of {other.num_classes} classes (ignore {other.ignore_index}) "
                f"into one of {self.num_classes} classes (ignore {self.ignore_index}); "
                "build both with the same num_classes and ignore_index"
            )
        self._counts += other._counts
        return self

    def iou(self) -> np.ndarray:
        """Per-class IoU (float64, length C); NaN for classes absent from both truth and prediction."""
        tp = np.diag(self._counts).astype(np.float64)
        gt = self._counts.sum(axis=1)
        predicted = self._counts[:, : self.num_classes].sum(axis=0)
        union = (gt + predicted).astype(np.float64) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes whose IoU is not NaN (the official convention); NaN if none."""
        iou = self.iou()
        present = iou[~np.isnan(iou)]
        return float(present.mean()) if present.size else float("nan")

    def majority_baseline_miou(self) -> float:
        """mIoU a trivial predictor would get on the same pixels: the most frequent
        ground-truth class everywhere (its IoU is its pixel share, every other class present
        in the ground truth scores 0). NaN before any valid pixel was seen."""
        gt = self.matrix.sum(axis=1)
        present = int(np.count_nonzero(gt))
        return _ratio(int(gt.max()), self.total_pixels) / present if present else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels / scored pixels (NaN before any valid pixel was seen)."""
        return _ratio(int(np.trace(self._counts)), self.total_pixels)

    def to_record(self, class_names: Sequence[str] | None = None) -> ScoreSummary:
        """The scores as records keep them (classes named by ``class_names``, else by their index)."""
        names = _class_names(class_names, self.num_classes)
        return ScoreSummary(
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            pixels=self.total_pixels,
            miou=_nan_to_none(self.miou()),
            pixel_accuracy=_nan_to_none(self.pixel_accuracy()),
            iou={name: _nan_to_none(v) for name, v in zip(names, self.iou(), strict=True)},
            confusion_matrix=tuple(tuple(int(n) for n in row) for row in self.matrix),
            invalid_predictions=tuple(int(n) for n in self.invalid_predictions),
        )


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise MetricsError(f"got {len(class_names)} class names for {num_classes} classes; "
                           "pass one name per class (fornet.calibration.labels.CLASS_NAMES for Cityscapes)")
    return list(class_names)


def _windowed(a: np.ndarray, width: int, reduce: np.ufunc, fill: int) -> np.ndarray:
    """``reduce`` (np.maximum / np.minimum) over the (2*width+1)^2 square around each pixel.

    The square lies in the last two axes; outside the array it sees ``fill``.
    """
    out = a
    for axis in (a.ndim - 2, a.ndim - 1):
        n = out.shape[axis]
        pad = [(0, 0)] * a.ndim
        pad[axis] = (width, width)
        shifted = np.moveaxis(np.pad(out, pad, constant_values=fill), axis, 0)
        acc = shifted[:n].copy()
        for start in range(1, 2 * width + 1):
            reduce(acc, shifted[start:start + n], out=acc)
        out = np.moveaxis(acc, 0, axis)
    return out


def boundary_band(label: np.ndarray, width: int = 3, ignore_index: int = 255) -> np.ndarray:
    """Boolean mask of the pixels within ``width`` px of a label change (the hard regions).

    A pixel is in the band when its own label is valid and some pixel at Chebyshev distance at
    most ``width`` holds a different valid label. Ignored pixels are never in the band, and a
    change to or from ``ignore_index`` is not a label change. Works on HxW or NxHxW.
    """
    label = _as_label_array(label, "label")
    if width < 0:
        raise MetricsError(f"boundary width must be >= 0 pixels, got {width}")
    work = np.int32 if label.dtype.itemsize <= 2 else np.int64  # int32 is faster and fits uint16
    values = label.astype(work)
    valid = values != ignore_index
    # Ignored pixels are replaced by values that never win the max (or the min).
    lowest, highest = np.iinfo(work).min, np.iinfo(work).max
    high = _windowed(np.where(valid, values, lowest), width, np.maximum, lowest)
    low = _windowed(np.where(valid, values, highest), width, np.minimum, highest)
    return valid & ((high > values) | (low < values))


def pixel_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of pixels (inside ``mask`` if given) where ``a`` and ``b`` are equal; NaN if none."""
    a, b = np.asarray(a), np.asarray(b)
    _check_same_shape(a=a, b=b)
    same = a == b
    if mask is None:
        return _ratio(int(same.sum()), same.size)
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise MetricsError(f"mask must be a boolean array, got dtype {mask.dtype}; "
                           "build it with a comparison such as label != 255")
    _check_same_shape(a=a, mask=mask)
    return _ratio(int(same[mask].sum()), int(mask.sum()))


class ParityReport:
    """Accumulated comparison of two predictors (a = reference, b = candidate) on the same images.

    Tracks pixel agreement over all pixels and inside the target's :func:`boundary_band`, and one
    :class:`ConfusionMatrix` per predictor; deltas are ``b - a``.
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = 255, boundary_width: int = 3) -> None:
        self.a = ConfusionMatrix(num_classes, ignore_index)
        self.b = ConfusionMatrix(num_classes, ignore_index)
        self.boundary_width = boundary_width
        self.pixels = 0
        self.agreeing_pixels = 0
        self.boundary_pixels = 0
        self.agreeing_boundary_pixels = 0

    def update(self, pred_a: np.ndarray, pred_b: np.ndarray, target: np.ndarray) -> None:
        """Add one image (HxW) or a batch (NxHxW) of both predictors' trainIds and the target."""
        pred_a = _as_label_array(pred_a, "pred_a")
        pred_b = _as_label_array(pred_b, "pred_b")
        target = _as_label_array(target, "target")
        _check_same_shape(pred_a=pred_a, pred_b=pred_b, target=target)
        band = boundary_band(target, self.boundary_width, self.a.ignore_index)
        self.a.update(pred_a, target)
        self.b.update(pred_b, target)
        same = pred_a == pred_b
        self.pixels += same.size
        self.agreeing_pixels += int(same.sum())
        self.boundary_pixels += int(band.sum())
        self.agreeing_boundary_pixels += int(same[band].sum())

    @property
    def agreement(self) -> float:
        """Fraction of all pixels (ignored ones included) where both predictors agree."""
        return _ratio(self.agreeing_pixels, self.pixels)

    @property
    def boundary_agreement(self) -> float:
        """Fraction of boundary-band pixels where both predictors agree."""
        return _ratio(self.agreeing_boundary_pixels, self.boundary_pixels)

    @property
    def miou_delta(self) -> float:
        """``mIoU(b) - mIoU(a)`` (negative: the candidate is worse)."""
        return self.b.miou() - self.a.miou()

    @property
    def iou_delta(self) -> np.ndarray:
        """Per-class ``IoU(b) - IoU(a)``; NaN where either is NaN."""
        return self.b.iou() - self.a.iou()

    def to_record(self, class_names: Sequence[str] | None = None,
                  names: tuple[str, str] = ("a", "b")) -> ParitySummary:
        """The agreement as records keep it; ``names`` label the two predictors (e.g. ``("pytorch", "tensorrt")``).

        The scores of each predictor are ``self.a.to_record(...)`` and ``self.b.to_record(...)``.
        """
        labels = _class_names(class_names, self.a.num_classes)
        return ParitySummary(
            names=names,
            boundary_width=self.boundary_width,
            pixels=self.pixels,
            agreement=_nan_to_none(self.agreement),
            boundary_pixels=self.boundary_pixels,
            boundary_agreement=_nan_to_none(self.boundary_agreement),
            miou_delta=_nan_to_none(self.miou_delta),
            iou_delta={n: _nan_to_none(v) for n, v in zip(labels, self.iou_delta, strict=True)},
            text=self.summary(names),
        )

    def summary(self, names: tuple[str, str] = ("a", "b")) -> str:
        """A few human-readable lines: agreements and both mIoUs with their delta (percent)."""
        a, b = names
        return "\n".join([
            f"pixel agreement {a} vs {b}: {100 * self.agreement:.3f}% of {self.pixels} pixels",
            f"boundary-band agreement (width {self.boundary_width}): "
            f"{100 * self.boundary_agreement:.3f}% of {self.boundary_pixels} pixels",
            f"mIoU {a}: {100 * self.a.miou():.2f}  {b}: {100 * self.b.miou():.2f}  "
            f"delta: {100 * self.miou_delta:+.2f}",
        ])


def compare_predictions(pred_a: np.ndarray, pred_b: np.ndarray, target: np.ndarray,
                        num_classes: int = 19, ignore_index: int = 255,
                        boundary_width: int = 3) -> ParityReport:
    """A :class:`ParityReport` of one image or batch; call ``.update`` on it to add more."""
    report = ParityReport(num_classes, ignore_index, boundary_width)
    report.update(pred_a, pred_b, target)
    return report


def save_label_id_png(path: str | os.PathLike[str], train_ids: np.ndarray) -> None:
    """Write HxW trainIds as a Cityscapes labelId PNG (8-bit, one channel), atomically.

    This is the file format the official evaluator reads. Values that are not a trainId
    (255 and anything else outside 0..18) become labelId 0 ("unlabeled"), which it scores as a miss.
    """
    import cv2

    train_ids = np.asarray(train_ids)
    if train_ids.ndim != 2 or train_ids.dtype.kind not in "ui":
        raise MetricsError(f"expected an HxW integer array of trainIds, got shape {train_ids.shape} "
                           f"dtype {train_ids.dtype}; save one image at a time, after the argmax")
    clipped = np.where((train_ids >= 0) & (train_ids <= 255), train_ids, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", train_ids_to_label_ids(clipped))
    if not ok:
        raise MetricsError(f"OpenCV could not encode a PNG for {path}; check the array's shape")
    write_bytes_atomic(path, encoded.tobytes())


def format_iou_table(iou: Sequence[float] | np.ndarray, class_names: Sequence[str]) -> str:
    """A two-column text table of per-class IoU in percent (``n/a`` for NaN)."""
    values = np.asarray(iou, dtype=np.float64)
    names = _class_names(class_names, values.size)
    width = max(len("class"), *(len(n) for n in names))
    lines = [f"{'class':<{width}}  IoU (%)", "-" * (width + 9)]
    for name, value in zip(names, values, strict=True):
        shown = "n/a" if math.isnan(value) else f"{100 * value:.2f}"
        lines.append(f"{name:<{width}}  {shown:>7}")
    return "\n".join(lines)
