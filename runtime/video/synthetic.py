"""Generated street-scene videos with ground truth, for tests, benchmarks and demos.

A wide generated Cityscapes-style scene (:func:`fornet.calibration.synth_scene.render_scene`) is
viewed through a window that pans across it, so every frame has exact labels; the frames are
encoded to H.264 with :class:`~fornet.runtime.video.encode.H264Writer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fornet.calibration.labels import label_ids_to_train_ids
from fornet.calibration.synth_scene import render_scene
from fornet.runtime.video.encode import H264Writer
from fornet.runtime.video.errors import SinkError


def pan_sequence(size: tuple[int, int], frames: int, seed: int = 0,
                 pan: float = 1.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``frames`` views ``(BGR uint8 H x W x 3, trainIds H x W)`` of one scene, panning left to right.

    The scene is ``1 + pan`` frame widths wide; the window moves evenly across it.
    """
    height, width = size
    scene_width = round(width * (1 + pan))
    rgb, label_ids, _ = render_scene((height, scene_width), seed)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    train_ids = label_ids_to_train_ids(label_ids)
    for index in range(frames):
        x = (scene_width - width) * index // max(frames - 1, 1)
        yield bgr[:, x:x + width].copy(), train_ids[:, x:x + width].copy()


def write_pan_video(path: str | os.PathLike[str], size: tuple[int, int], frames: int, fps: float = 25.0,
                    seed: int = 0, crf: int = 18, force: bool = False) -> list[np.ndarray]:
    """Encode :func:`pan_sequence` to an H.264 file; return the ground-truth trainIds per frame.

    Raises:
        SinkError: ``path`` exists and ``force`` is off (the same rule as ``fornet data synth``).
    """
    if Path(path).exists() and not force:
        raise SinkError(f"{path} already exists; choose another --out, or pass --force to replace it")
    writer = H264Writer(Path(path), size, fps, crf=crf)
    truth: list[np.ndarray] = []
    try:
        for image, labels in pan_sequence(size, frames, seed):
            writer.write(image)
            truth.append(labels)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return truth
