"""Per-layer INT8 sensitivity and the greedy float fallback (``--fallback-sensitive``).

Sensitivity of a convolution is measured, not guessed: the graph is quantized with only that
layer in INT8 (everything else FP32, same calibrated ranges) and run on a few calibration images;
the score is the fraction of pixels whose predicted class differs from the FP32 graph's. The
layers are then ranked, most sensitive first, and kept in FP32 one at a time until the accuracy
gate passes (or a limit on the number of float layers is reached).
"""
# ruff: noqa: TID253

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from fornet.calibration.int8_calibrate import ActivationRanges
from fornet.contract import INPUT_NAME
from fornet.export.int8.accuracy_gate import GateReport
from fornet.export.int8.qdq_graph import quantize_graph
from fornet.runtime.onnxrt import OnnxRuntimeBackend


@dataclass(frozen=True)
class LayerSensitivity:
    """How much quantizing one layer alone changes the prediction.

    Attributes:
        node: the convolution's node name.
        disagreement: fraction of pixels whose class differs from FP32 with only this layer in INT8.
    """

    node: str
    disagreement: float


def _classes(path: str | os.PathLike[str], feeds: Sequence[np.ndarray]) -> np.ndarray:
    """Predicted classes of every feed (argmax of logits, or the labels output)."""
    with OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"]) as backend:
        main = next(iter(backend.output_specs))
        outputs = [backend.infer({INPUT_NAME: feed})[main] for feed in feeds]
    return np.stack([out.argmax(axis=1) if out.ndim == 4 else out for out in outputs])


def measure_sensitivity(fp32_path: str | os.PathLike[str], ranges: ActivationRanges, candidates: Sequence[str],
                        keep_float: Sequence[str], feeds: Sequence[np.ndarray],
                        progress: bool = True) -> list[LayerSensitivity]:
    """Rank ``candidates`` (convolution names) by the damage each does alone in INT8.

    Args:
        fp32_path: ``fornet.onnx``.
        ranges: its calibrated ranges.
        candidates: the layers that are INT8 in the full INT8 graph.
        keep_float: layers that always stay FP32 (selector head, gate).
        feeds: graph inputs (a few preprocessed calibration batches).
        progress: show a progress bar.

    Returns:
        One entry per candidate, most sensitive first (ties keep graph order).
    """
    reference = _classes(fp32_path, feeds)
    scores = []
    with tempfile.TemporaryDirectory(prefix="fornet-sensitivity-") as tmp:
        path = Path(tmp) / "one_layer_int8.onnx"
        for node in tqdm(candidates, desc="layer sensitivity", unit="layer", disable=not progress):
            onnx.save(quantize_graph(fp32_path, ranges, keep_float, only=[node]), path)
            scores.append(LayerSensitivity(node, float(np.mean(_classes(path, feeds) != reference))))
    return sorted(scores, key=lambda s: -s.disagreement)


@dataclass(frozen=True)
class FallbackStep:
    """One attempt of the greedy fallback: the float layers and the gate's verdict (mIoU in percent, drop in points)."""

    fallback: tuple[str, ...]
    int8_miou: float
    miou_drop_points: float
    passed: bool

    @classmethod
    def of(cls, fallback: Sequence[str], report: GateReport) -> FallbackStep:
        """The step that kept ``fallback`` in float and got ``report``."""
        return cls(tuple(fallback), round(100.0 * report.int8_miou, 3), round(report.drop, 3), report.passed)


@dataclass(frozen=True)
class SensitivityRecord:
    """The fallback's measurements as the INT8 manifest records them: the ranking and every step."""

    images: int
    metric: str
    ranking: tuple[LayerSensitivity, ...]
    steps: tuple[FallbackStep, ...]


def greedy_fallback(ranking: Sequence[LayerSensitivity], attempt: Callable[[list[str]], GateReport],
                    max_layers: int) -> tuple[list[str], GateReport | None, list[FallbackStep]]:
    """Keep the most sensitive layers in float, one more per step, until ``attempt`` passes.

    Args:
        ranking: from :func:`measure_sensitivity`.
        attempt: builds and gates the INT8 graph with the given float layers.
        max_layers: the most layers to keep in float.

    Returns:
        The float layers of the last attempt, its report and every step (the report is None
        when ``ranking`` or ``max_layers`` allows no step).
    """
    fallback: list[str] = []
    report: GateReport | None = None
    steps: list[FallbackStep] = []
    for entry in ranking[:max_layers]:
        fallback.append(entry.node)
        report = attempt(list(fallback))
        steps.append(FallbackStep.of(fallback, report))
        if report.passed:
            break
    return fallback, report, steps
