"""Helpers shared by the INT8 tests: a small exported FP32 graph and its calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fornet.calibration.int8_calibrate import ActivationRanges, ModelInput, calibrate, select_calibration_images
from fornet.calibration.metrics import ParityReport
from fornet.export import ExportOptions, ExportResult, export_onnx
from fornet.export.int8.accuracy_gate import GateReport
from fornet.model import save_checkpoint
from fornet.normalization import IMAGENET_MEAN, IMAGENET_STD
from tests.helpers.model_utils import realistic_model

#: Export size of the INT8 tests: lite's 16x stride gives a 4 x 8 selector grid (k = 3, 6, 10, 13).
SIZE = (64, 128)
KS = (3, 6, 10, 13)


def lite_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A realistic-random lite checkpoint in ``folder``."""
    path = folder / "lite.pth"
    save_checkpoint(path, realistic_model("lite", seed=seed), "lite")
    return path


def export_fp32(ckpt: Path, out: Path, **options: object) -> ExportResult:
    """``fornet.onnx`` of ``ckpt`` at :data:`SIZE` (no verification, no progress bars)."""
    options = {"gate": "plugin", **options}
    return export_onnx(ckpt, out, ExportOptions(input_size=SIZE, verify=False, progress=False, **options))  # type: ignore[arg-type]


def model_input() -> ModelInput:
    """Normalised input at :data:`SIZE`."""
    return ModelInput(SIZE, IMAGENET_MEAN, IMAGENET_STD)


def minmax_ranges(onnx_path: Path, root: Path, count: int = 2) -> ActivationRanges:
    """MinMax ranges of ``onnx_path`` from ``count`` train images of ``root``."""
    images = select_calibration_images(root, "train", count)
    return calibrate(onnx_path, images, model_input(), "minmax", progress=False)[0]


def gate_report(int8_errors: int, max_drop: float = 1.0, cells: list[list[int]] | None = None) -> GateReport:
    """A gate report whose INT8 labels differ from FP32 in ``int8_errors`` of 64 pixels."""
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 1
    int8 = label.copy()
    int8.reshape(-1)[:int8_errors] = 1
    parity = ParityReport()
    parity.update(label, int8, label)
    return GateReport(split="val", images=1, max_drop=max_drop, parity=parity,
                      selected_cells=cells or [list(KS)], expected_cells=list(KS), mask_agreement=1.0)
