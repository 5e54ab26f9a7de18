"""Video files decoded on the GPU's NVDEC through NVIDIA's PyNvVideoCodec (the ``gpu-video`` extra).

Where PyNvVideoCodec is installed and PyTorch sees a CUDA GPU, ``auto`` reads video files with
:class:`NvdecReader`; elsewhere, and for streams and cameras, the CPU readers stay
(:mod:`fornet.runtime.video.readers`), and the run's report names the reader that ran. PyNvVideoCodec's
``SimpleDecoder`` decodes to interleaved RGB in device memory; the frame is taken into PyTorch through
DLPack (no copy on the device), turned to BGR and copied to the host, where the pipeline takes it.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.uri import SourceSpec

#: What to install for NVDEC decoding.
INSTALL = "pip install 'fornet-deploy[gpu-video]' (PyNvVideoCodec; an NVIDIA GPU with NVDEC and its driver)"


@functools.cache
def nvdec_available() -> bool:
    """Whether PyNvVideoCodec is importable and PyTorch sees a CUDA GPU (checked once)."""
    if importlib.util.find_spec("PyNvVideoCodec") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class NvdecReader:
    """A video file decoded by NVDEC (see the module docstring); frames are BGR on the host."""

    def __init__(self, spec: SourceSpec, gpu: int = 0) -> None:
        if spec.kind != "video":
            raise SourceError(f"the NVDEC reader reads video files, not {spec.kind} inputs; use --input-backend auto")
        try:
            import PyNvVideoCodec as nvc
        except ImportError as exc:
            raise SourceError(f"--input-backend nvdec needs PyNvVideoCodec: {INSTALL}; or use --input-backend "
                              "pyav") from exc
        self._gpu = gpu
        try:
            self._decoder: Any = nvc.SimpleDecoder(spec.location, gpu_id=gpu, use_device_memory=True,
                                                   output_color_type=nvc.OutputColorType.RGB)
            self.total: int | None = len(self._decoder)
            metadata = self._decoder.get_stream_metadata()
        except Exception as exc:  # PyNvVideoCodec raises plain RuntimeErrors/ValueErrors
            raise SourceError(f"NVDEC cannot open {spec.display_name}: {exc}; check the file with ffprobe, or read "
                              "it on the CPU with --input-backend pyav") from exc
        rate = getattr(metadata, "average_fps", None)
        self.fps: float | None = float(rate) if rate else None
        self._next = 0

    def read(self, timeout_s: float) -> np.ndarray | None:
        """The next frame (BGR, host memory); ``EOFError`` after the last."""
        import torch

        if self._decoder is None or self.total is None or self._next >= self.total:
            raise EOFError
        frame = self._decoder[self._next]
        self._next += 1
        rgb = torch.from_dlpack(frame)  # H x W x 3 uint8 on the GPU, no copy
        return np.ascontiguousarray(rgb.flip(-1).cpu().numpy())

    def close(self) -> None:
        """Drop the decoder (its device memory goes with it)."""
        self._decoder = None
