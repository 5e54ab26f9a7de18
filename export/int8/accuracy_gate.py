"""The INT8 accuracy gate: ``fornet.onnx`` and ``fornet_int8.onnx`` scored with ONNX Runtime on a labelled split.

Both files run on the same images through the same preprocessing as calibration and evaluation
(:class:`~fornet.calibration.int8_calibrate.ModelInput`); logits become labels at the label's resolution
as the runtime makes them (exact bilinear upsampling and argmax, labels outputs resized nearest-exact:
:mod:`fornet.runtime.cpu_prepost`) and are scored as the official evaluator does
(:class:`~fornet.calibration.metrics.ParityReport`: one confusion matrix per file over the split).
The report holds the mIoU of each, the drop in points, per-class IoU deltas, the pixel agreement
of INT8 with FP32 overall and on the ground truth's boundary band, and the selected cells per
Top-K ratio of the INT8 file's masks, which must equal ``k`` on every image. The gate passes when
``k`` is exact and the drop is at most ``max_drop`` points.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.int8_calibrate import ModelInput
from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from fornet.calibration.metrics import ParityReport
from fornet.contract import INPUT_NAME, MASKS_NAME
from fornet.export.errors import ExportError
from fornet.runtime.cpu_prepost import resize_labels, upsampled_labels
from fornet.runtime.onnxrt import OnnxRuntimeBackend

#: Largest accepted mIoU drop, in points (percent).
DEFAULT_MAX_MIOU_DROP = 1.0
#: Width in pixels of the boundary band whose agreement is reported.
BOUNDARY_WIDTH = 3


class AccuracyGateError(ExportError):
    """The INT8 file loses more accuracy than allowed, or its Top-K is not exact."""


@dataclass(frozen=True)
class ClassIouChange:
    """One class's IoU in points for FP32 and INT8 and their difference (None where undefined)."""

    fp32: float | None
    int8: float | None
    delta: float | None


@dataclass(frozen=True)
class GateRecord:
    """A gate run as the INT8 manifest records it (mIoU and IoU in points, agreements as fractions).

    ``data`` names the scored folder (the ONNX Runtime file's gate); ``numerics`` says how the
    INT8 file was run (the TensorRT-targeted file's gate).
    """

    split: str
    images: int
    max_miou_drop_points: float
    fp32_miou: float
    int8_miou: float
    miou_drop_points: float
    pixel_agreement: float
    boundary_agreement: float
    boundary_width: int
    selected_cells: list[list[int]]
    expected_cells: list[int]
    k_exact: bool
    mask_agreement: float
    iou: dict[str, ClassIouChange]
    passed: bool
    data: str | None = None
    numerics: str | None = None


@dataclass
class GateReport:
    """Outcome of one accuracy-gate run (IoUs as fractions, drops in points).

    Attributes:
        split: the scored split.
        images: images scored.
        max_drop: the allowed mIoU drop in points.
        parity: FP32 (``a``) vs INT8 (``b``) confusion matrices and agreements.
        selected_cells: distinct rows of selected cells per ratio over the images (INT8 file).
        expected_cells: the gate's ``k`` per ratio.
        mask_agreement: fraction of selector cells whose mask bits equal FP32's.
    """

    split: str
    images: int
    max_drop: float
    parity: ParityReport
    selected_cells: list[list[int]]
    expected_cells: list[int]
    mask_agreement: float

    @property
    def fp32_miou(self) -> float:
        """mIoU of the FP32 file."""
        return self.parity.a.miou()

    @property
    def int8_miou(self) -> float:
        """mIoU of the INT8 file."""
        return self.parity.b.miou()

    @property
    def drop(self) -> float:
        """``mIoU(FP32) - mIoU(INT8)`` in points (positive: INT8 is worse)."""
        return -100.0 * self.parity.miou_delta

    @property
    def k_exact(self) -> bool:
        """Every INT8 mask held exactly ``k`` cells on every image."""
        return self.selected_cells == [self.expected_cells]

    @property
    def passed(self) -> bool:
        """``k`` is exact and the drop is within the limit."""
        return self.k_exact and math.isfinite(self.drop) and self.drop <= self.max_drop

    def iou_table(self) -> dict[str, ClassIouChange]:
        """Per class: FP32 IoU, INT8 IoU and their delta in points (None where undefined)."""
        def points(value: float) -> float | None:
            return None if math.isnan(value) else round(100.0 * value, 3)

        rows = zip(CLASS_NAMES, self.parity.a.iou(), self.parity.b.iou(), self.parity.iou_delta, strict=True)
        return {name: ClassIouChange(points(a), points(b), points(d)) for name, a, b, d in rows}

    def to_record(self, data: str | None = None, numerics: str | None = None) -> GateRecord:
        """The report as the INT8 manifest records it (``data``, ``numerics``: see :class:`GateRecord`)."""
        return GateRecord(
            data=data, numerics=numerics, split=self.split, images=self.images, max_miou_drop_points=self.max_drop,
            fp32_miou=round(100.0 * self.fp32_miou, 3), int8_miou=round(100.0 * self.int8_miou, 3),
            miou_drop_points=round(self.drop, 3), pixel_agreement=round(self.parity.agreement, 6),
            boundary_agreement=round(self.parity.boundary_agreement, 6), boundary_width=self.parity.boundary_width,
            selected_cells=self.selected_cells, expected_cells=self.expected_cells, k_exact=self.k_exact,
            mask_agreement=round(self.mask_agreement, 6), iou=self.iou_table(), passed=self.passed,
        )

    def summary(self) -> str:
        """A few lines for the console."""
        worst = sorted(((d.delta, n) for n, d in self.iou_table().items() if d.delta is not None))[:3]
        return "\n".join([
            f"accuracy gate on {self.images} {self.split} image(s): mIoU FP32 {100 * self.fp32_miou:.2f}, "
            f"INT8 {100 * self.int8_miou:.2f}, drop {self.drop:.3f} points (limit {self.max_drop:.3f}): "
            f"{'PASS' if self.passed else 'FAIL'}",
            f"pixel agreement INT8 vs FP32 {100 * self.parity.agreement:.3f}%, boundary band "
            f"({self.parity.boundary_width} px) {100 * self.parity.boundary_agreement:.3f}%; mask agreement "
            f"{100 * self.mask_agreement:.3f}%; selected cells per ratio {' / '.join(map(str, self.selected_cells))} "
            f"(k = {self.expected_cells})",
            "largest per-class IoU changes: " + ", ".join(f"{name} {delta:+.2f}" for delta, name in worst),
        ])


def _labels(main: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One image's trainIds at ``size`` from ``C x H x W`` logits or ``H x W`` labels, as the runtime computes
    them (:func:`~fornet.runtime.cpu_prepost.upsampled_labels`, nearest-exact for labels)."""
    if main.ndim == 3:
        return upsampled_labels(main, size)
    return resize_labels(main.astype(np.uint8), size)


def evaluate_int8(fp32_path: str | os.PathLike[str], int8_path: str | os.PathLike[str], dataset: CityscapesDataset,
                  model_input: ModelInput, *, batch: int, ks: Sequence[int], max_drop: float = DEFAULT_MAX_MIOU_DROP,
                  limit: int | None = None, progress: bool = True, exact_numerics: bool = False) -> GateReport:
    """Score both files on ``dataset`` (labelled) and build the :class:`GateReport`.

    Args:
        fp32_path, int8_path: the two ONNX files (same inputs and outputs).
        dataset: a labelled split (``require_labels=True``).
        model_input: the graph input's size and format.
        batch: images per run (the files' static batch; the last run is padded, not scored).
        ks: the gate's ``k`` per ratio.
        max_drop: allowed mIoU drop in points.
        limit: score only the first ``limit`` images.
        progress: show a progress bar.
        exact_numerics: run the INT8 file with ONNX Runtime's graph optimisations off (every Q/DQ
            node as written: the numerics of the TensorRT-targeted FP16 Q/DQ file).

    Raises:
        AccuracyGateError: no images, or a model that does not predict Cityscapes' 19 classes.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n < 1:
        raise AccuracyGateError("the accuracy gate has no images to score; pass a labelled split "
                                "(--eval-data / --eval-split) or --no-accuracy-gate")
    parity = ParityReport(NUM_CLASSES, IGNORE_INDEX, BOUNDARY_WIDTH)
    counts: set[tuple[int, ...]] = set()
    cells_agree = cells = 0
    cpu = ["CPUExecutionProvider"]
    with OnnxRuntimeBackend(fp32_path, providers=cpu) as fp32, \
            OnnxRuntimeBackend(int8_path, providers=cpu, optimize=not exact_numerics) as int8:
        main = next(iter(fp32.output_specs))
        for start in tqdm(range(0, n, batch), desc="accuracy gate", unit="batch", disable=not progress):
            samples = [dataset[i] for i in range(start, min(start + batch, n))]
            images = [s.image for s in samples]
            feed = {INPUT_NAME: model_input.batch(images + [images[-1]] * (batch - len(images)))}
            ref, got = fp32.infer(feed), int8.infer(feed)
            if ref[main].ndim == 4 and ref[main].shape[1] != NUM_CLASSES:
                raise AccuracyGateError(f"the model predicts {ref[main].shape[1]} classes but the gate scores "
                                        f"Cityscapes' {NUM_CLASSES}; use --no-accuracy-gate for other label sets")
            for i, sample in enumerate(samples):
                if sample.label is None:
                    raise AccuracyGateError(f"{sample.name} has no gtFine label; the accuracy gate needs a labelled "
                                            "split (--eval-split val) or --no-accuracy-gate")
                size = sample.label.shape
                parity.update(_labels(ref[main][i], size), _labels(got[main][i], size), sample.label)
            ref_masks, got_masks = ref[MASKS_NAME][: len(samples)], got[MASKS_NAME][: len(samples)]
            cells_agree += int((ref_masks == got_masks).all(axis=1).sum())
            cells += ref_masks[:, 0].size
            counts.update(tuple(int(c) for c in row) for row in got_masks.astype(np.float64).sum(axis=(2, 3)).round())
    return GateReport(split=dataset.split, images=n, max_drop=max_drop, parity=parity,
                      selected_cells=[list(row) for row in sorted(counts)], expected_cells=[int(k) for k in ks],
                      mask_agreement=cells_agree / cells)
