"""Shared pieces of the video tests: a generated H.264 clip with ground truth, decoding, the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.runtime_models import lite_export

#: Frame size of the generated clips (the test model's input is 64x128: the segmenter resizes).
FRAME_SIZE = (128, 256)


@dataclass(frozen=True)
class Clip:
    """A generated pan over a street scene: the H.264 file and the trainIds of every frame."""

    path: Path
    truth: list[np.ndarray]


_CLIPS: dict[int, Clip] = {}


def pan_clip(factory: pytest.TempPathFactory, frames: int = 40) -> Clip:
    """Encode the clip once per session and length."""
    if frames not in _CLIPS:
        from fornet.runtime.video.synthetic import write_pan_video

        path = factory.mktemp("clip") / "pan.mp4"
        _CLIPS[frames] = Clip(path, write_pan_video(path, FRAME_SIZE, frames, fps=25, seed=1))
    return _CLIPS[frames]


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as BGR (an independent reading of the file)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def onnx_model(factory: pytest.TempPathFactory) -> Path:
    """The shared lite test export (float input, logits, batch 1)."""
    return lite_export(factory).onnx


def batched_model(factory: pytest.TempPathFactory) -> Path:
    """The shared lite test export with a dynamic batch (raw uint8 input, labels output)."""
    return lite_export(factory).raw_labels
