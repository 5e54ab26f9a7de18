"""The served computation: a batch of uint8 BGR frames -> labels (and the overlay), on a Segmenter.

Used by ``fornet serve`` (PyTriton) and by the Python-backend model of the Triton repository that
``fornet export --triton`` writes, so both serve exactly what :class:`Segmenter` computes locally.
"""

from __future__ import annotations

import numpy as np

from fornet.calibration.preprocess import check_image
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.contract import FRAMES, LABELS, OVERLAY
from fornet.runtime.serving.errors import ServingError


class FrameSegmentation:
    """Callable ``{frames: N x H x W x 3 uint8} -> {labels[, overlay]}`` around an open Segmenter.

    Args:
        segmenter: the model (its batch splits larger batches into several runs).
        overlay_alpha: also return the overlay, blended with this alpha (None: labels only).
    """

    def __init__(self, segmenter: Segmenter, overlay_alpha: float | None = None) -> None:
        self.segmenter = segmenter
        self.overlay_alpha = overlay_alpha

    @property
    def output_names(self) -> tuple[str, ...]:
        """The outputs every call returns."""
        return (LABELS,) if self.overlay_alpha is None else (LABELS, OVERLAY)

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Segment a batch; raise :class:`ServingError` (an error answer, not a crash) for bad input."""
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[0] == 0:
            shape = getattr(frames, "shape", None)
            raise ServingError(f"{FRAMES} must be a [batch, H, W, 3] uint8 tensor, got shape {shape}")
        checked = [check_image(frame, f"{FRAMES}[{index}]") for index, frame in enumerate(frames)]
        results = self.segmenter.segment_batch(checked, self.overlay_alpha)
        outputs = {LABELS: np.stack([result.labels for result in results])}
        if self.overlay_alpha is not None:
            outputs[OVERLAY] = np.stack([result.overlay for result in results])
        return outputs
