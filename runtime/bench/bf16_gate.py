"""The BF16 gate of ``fornet bench``: a model run in BF16 must keep its FP32 mIoU on the accuracy data.

A backend that chooses its compute precision (OpenVINO on a CPU with BF16, PyTorch autocast) says so
in ``Backend.inference_precision``. For each model under test that runs in BF16, the gate opens the
same model in FP32 (the same spec with ``precision="fp32"``), scores both on the labelled split of
``--data`` with the same frames and the same scoring as the INT8 accuracy gate and the accuracy
benchmark (:class:`~fornet.calibration.metrics.ParityReport`: one confusion matrix per model over
the split, pixel agreement overall and on the boundary band), and passes when the mIoU drop is at
most ``--max-miou-drop`` points. ``fornet bench`` runs it before timing anything, so a refusal
costs no measurement.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from fornet.calibration.metrics import ParityReport
from fornet.runtime.bench.record import Bf16GateRecord
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.segmenter import Segmenter

_log = logging.getLogger(__name__)

#: Largest accepted mIoU drop of a BF16 run against FP32, in points (percent).
DEFAULT_MAX_BF16_DROP = 0.5
#: ``--bf16-gate``: what a failed gate does.
BF16_GATE_MODES = ("refuse", "warn")


class Bf16GateError(FornetRuntimeError):
    """A model run in BF16 loses more mIoU against FP32 than allowed."""


def bf16_gate(models: Sequence[Segmenter], data: Path, split: str, *, limit: int | None, max_drop: float,
              boundary_width: int, progress: bool) -> dict[str, Bf16GateRecord]:
    """Score each of ``models`` that runs in BF16 against the same model in FP32 on ``data``; records by label.

    Raises:
        DatasetError: ``split`` of ``data`` is missing or unlabelled.
    """
    gated = [seg for seg in models if seg.backend.inference_precision == "bf16"]
    if not gated:
        return {}
    dataset = CityscapesDataset(data, split, require_labels=True)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    records = {}
    for seg in gated:
        label = seg.backend.label
        with Segmenter(replace(seg.spec, precision="fp32")) as fp32:
            fp32_label = fp32.backend.label if fp32.backend.label != label else f"{label} at fp32"
            parity = ParityReport(NUM_CLASSES, IGNORE_INDEX, boundary_width)
            for index in tqdm(range(count), desc=f"BF16 gate {label}", unit="img", disable=not progress):
                sample = dataset[index]
                assert sample.label is not None
                frame = np.ascontiguousarray(sample.image[:, :, ::-1])
                parity.update(fp32(frame), seg(frame), sample.label)
        drop = -100.0 * parity.miou_delta
        records[label] = Bf16GateRecord(
            fp32=fp32_label, split=split, images=count, max_miou_drop_points=max_drop,
            fp32_miou=_points(parity.a.miou()), bf16_miou=_points(parity.b.miou()),
            miou_drop_points=None if math.isnan(drop) else round(drop, 3),
            passed=math.isfinite(drop) and drop <= max_drop,
            parity=parity.to_record(CLASS_NAMES, (fp32_label, label)),
        )
    return records


def _points(fraction: float) -> float | None:
    return None if math.isnan(fraction) else round(100.0 * fraction, 3)


def describe(label: str, record: Bf16GateRecord) -> str:
    """One line: the verdict of ``label``'s gate."""
    def value(points: float | None, unit: str = "") -> str:
        return "n/a" if points is None else f"{points:.3f}{unit}"

    agreement = None if record.parity.agreement is None else 100 * record.parity.agreement
    return (f"BF16 gate {label}: mIoU {value(record.bf16_miou, '%')} vs {record.fp32} {value(record.fp32_miou, '%')} "
            f"on {record.images} {record.split} image(s), drop {value(record.miou_drop_points)} points (limit "
            f"{record.max_miou_drop_points:.3f}), pixel agreement {value(agreement, '%')}: "
            f"{'PASS' if record.passed else 'FAIL'}")


def enforce(records: dict[str, Bf16GateRecord], mode: str) -> None:
    """Raise :class:`Bf16GateError` for the failed gates (``mode`` ``refuse``), or log a warning for each (``warn``)."""
    failed = [describe(label, record) for label, record in records.items() if not record.passed]
    if failed and mode == "refuse":
        raise Bf16GateError("; ".join(failed) + ": run the model in FP32 (--precision fp32, --compare BACKEND:fp32), "
                            "raise --max-miou-drop, or pass --bf16-gate warn to time it anyway")
    for line in failed:
        _log.warning("%s (--bf16-gate warn: timed anyway)", line)
