"""Shared pieces of the video tests: a generated H.264 clip with ground truth, and decoding.

The model is the session fixture ``lite`` (conftest.py): ``lite.onnx`` (batch 1) and
``lite.raw_labels`` (dynamic batch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

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

