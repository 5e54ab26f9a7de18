"""The records that travel through a video pipeline: captured frames and their results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fornet.runtime.cuda.device_array import DeviceArray


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        image: uint8 ``H x W x 3`` BGR: a host array, or a device array when the source decodes on the
            GPU and the pipeline's segmenter pre/post-processes there (NVDEC; the frame stays on the GPU).
        source_id: index of the source in the pipeline (0 for a lone source).
        index: frame number within the source, counting every frame read (dropped ones included).
        capture_time: wall-clock seconds (``time.time()``) when the frame was read.
        capture_monotonic: ``time.monotonic()`` at the same moment (for frame ages).
        decode_s: seconds spent reading and decoding it.
        name: an image input's file stem (``_leftImg8bit`` left out, as the Cityscapes evaluator
            expects), else ``""`` (see :attr:`output_name`).
        file: the image file it was read from (image inputs), else ``None``.
    """

    image: np.ndarray | DeviceArray
    source_id: int
    index: int
    capture_time: float
    capture_monotonic: float
    decode_s: float = 0.0
    name: str = ""
    file: str | None = None

    @property
    def output_name(self) -> str:
        """What the files made of it are named: :attr:`name`, else ``<source>-<frame>`` (``000000-000042``)."""
        return self.name or f"{self.source_id:06d}-{self.index:06d}"


@dataclass
class FrameResult:
    """A frame and what the pipeline made of it.

    Attributes:
        frame: the captured frame.
        labels: uint8 ``H x W`` trainIds at the frame's size.
        overlay: the rendered BGR image (overlay or colour mask), or ``None`` when nothing renders.
        times: seconds per stage (``decode``, ``pre``, ``infer``, ``post``, ``render``, ``encode``).
        age_s: seconds from capture to the result (set when the result leaves the segmenter).
    """

    frame: Frame
    labels: np.ndarray
    overlay: np.ndarray | None = None
    times: dict[str, float] = field(default_factory=dict)
    age_s: float = 0.0

    def histogram(self, classes: int) -> list[int]:
        """Pixels per class (length ``classes``), for the per-frame records."""
        return np.bincount(self.labels.ravel(), minlength=256)[:classes].tolist()
