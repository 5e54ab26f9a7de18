"""Video files and network streams decoded on the GPU's NVDEC through NVIDIA's PyNvVideoCodec (the
``gpu-video`` extra).

Where PyNvVideoCodec is installed and PyTorch sees a CUDA GPU, ``auto`` reads video files with
:class:`NvdecReader` and ``rtsp://`` streams with :class:`NvdecStreamReader`
(``--input-backend nvdec`` also reads ``http(s)://`` streams with it); elsewhere, and for cameras,
the CPU readers stay (:mod:`fornet.runtime.video.readers`), and the run's report names the reader
that ran.

Both readers have NVDEC write interleaved RGB in device memory (``OutputColorType.RGB``: the
decoder converts from the stream's YUV itself, by the colour matrix and range the stream signals);
the frame is taken into PyTorch through DLPack (no copy on the device), turned to BGR and copied to
the host, where the pipeline takes it; or, when the pipeline's segmenter pre/post-processes on the
GPU (``device_frames``), handed over in device memory as a
:class:`~fornet.runtime.cuda.device_array.DeviceArray`, so the frame never leaves the GPU.

Files go through ``SimpleDecoder``. A stream goes through PyNvVideoCodec's own FFmpeg demuxer
(``CreateDemuxer``: packets) and a decoder made for the stream's codec (``CreateDecoder``); each
packet gives zero or more frames, and the empty packet the demuxer returns at the end of the stream
flushes the frames the decoder still holds. The demuxer takes no options: it opens the URL with
FFmpeg's defaults (RTSP over UDP, falling back to TCP) and waits without a timeout, so
:func:`fornet.runtime.video.readers.open_reader` opens and reads it on a thread of its own
(:class:`fornet.runtime.video.readers.Unblocked`), bounding the open and leaving the silence to the
source's watchdog.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import threading
from collections import deque
from types import ModuleType
from typing import Any

import numpy as np

from fornet.runtime.cuda.device_array import DeviceArray, device_array_of
from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.uri import SourceSpec

#: What to install for NVDEC decoding.
INSTALL = "pip install 'fornet-deploy[gpu-video]' (PyNvVideoCodec; an NVIDIA GPU with NVDEC and its driver)"
#: Input kinds NVDEC reads: files through ``SimpleDecoder``, streams through the demuxer.
NVDEC_KINDS = ("video", "rtsp", "http")
#: Stream kinds ``auto`` reads with NVDEC where it is available.
NVDEC_AUTO_STREAMS = ("rtsp",)


@functools.cache
def nvdec_available() -> bool:
    """Whether PyTorch sees a CUDA GPU and PyNvVideoCodec loads there (checked once): its import loads the
    driver's video codec libraries, which a container started without the ``video`` driver capability lacks."""
    if importlib.util.find_spec("PyNvVideoCodec") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        _load_pynvvideocodec()
    except SourceError:
        return False
    return True


def _load_pynvvideocodec() -> ModuleType:
    """The PyNvVideoCodec module; :class:`SourceError` naming the fix when it is missing or does not load
    (it loads the NVIDIA driver's codec libraries on import and raises ``RuntimeError`` without them)."""
    try:
        import PyNvVideoCodec as nvc
    except ImportError as exc:
        raise SourceError(f"--input-backend nvdec needs PyNvVideoCodec: {INSTALL}; or use --input-backend "
                          "pyav") from exc
    except Exception as exc:  # its import raises RuntimeError when the driver lacks the codec libraries
        raise SourceError(f"PyNvVideoCodec does not load ({exc}): --input-backend nvdec needs an NVIDIA driver "
                          "with its video codec libraries (nvidia-smi shows the driver); or use --input-backend "
                          "pyav") from exc
    return nvc


def _bgr_frame(frame: Any, name: str, on_device: bool) -> np.ndarray | DeviceArray:
    """A decoded RGB frame (device memory) as a BGR ``H x W x 3`` uint8 frame: on the host, or with
    ``on_device`` a new device array (the flip copies on the GPU, so the decoder may reuse its surface)."""
    import torch

    rgb = torch.from_dlpack(frame)  # H x W x 3 uint8 on the GPU, no copy
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != torch.uint8:
        raise SourceError(f"NVDEC gave {name} frames of shape {tuple(rgb.shape)} ({rgb.dtype}), not H x W x 3 "
                          "8-bit RGB (a 10/12-bit or 4:4:4 stream?); read it on the CPU with --input-backend pyav")
    if not on_device:
        return np.ascontiguousarray(rgb.flip(-1).cpu().numpy())
    # On a stream of the reader's own (PyTorch's are non-blocking), so the copy overlaps the model's work
    # on the segmentation thread's stream; ready when handed over: the consumer has no stream to wait on.
    stream = _copy_stream(rgb.device.index or 0)
    with torch.cuda.stream(stream):
        bgr = rgb.flip(-1)
    stream.synchronize()
    return dataclasses.replace(device_array_of(bgr), stream=None)  # PyTorch names its current stream: done


_copy_streams = threading.local()


def _copy_stream(gpu: int) -> Any:
    """This thread's PyTorch stream on GPU ``gpu`` for the decoder's BGR copies (made once per thread)."""
    import torch

    streams: dict[int, Any] = getattr(_copy_streams, "streams", {})
    if gpu not in streams:
        streams[gpu] = torch.cuda.Stream(device=gpu)
        _copy_streams.streams = streams
    return streams[gpu]


class NvdecReader:
    """A video file decoded by NVDEC (see the module docstring); frames are BGR on the host."""

    def __init__(self, spec: SourceSpec, gpu: int = 0) -> None:
        if spec.kind != "video":
            raise SourceError(f"NvdecReader reads video files, not {spec.kind} inputs; streams are read by "
                              "NvdecStreamReader (open_reader picks it)")
        nvc = _load_pynvvideocodec()
        self._name = spec.display_name
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
        #: Hand frames over in device memory (a pipeline whose segmenter pre/post-processes on the GPU).
        self.device_frames = False

    def read(self, timeout_s: float) -> np.ndarray | DeviceArray | None:
        """The next frame (BGR; host memory, or device memory with :attr:`device_frames`); ``EOFError`` after
        the last."""
        if self._decoder is None or self.total is None or self._next >= self.total:
            raise EOFError
        frame = self._decoder[self._next]
        self._next += 1
        return _bgr_frame(frame, self._name, self.device_frames)

    def close(self) -> None:
        """Drop the decoder (its device memory goes with it)."""
        self._decoder = None


class NvdecStreamReader:
    """An RTSP or HTTP(S) stream demuxed by PyNvVideoCodec and decoded by NVDEC; frames are BGR on the host.

    Opening and :meth:`read` block for as long as the server makes them (see the module docstring):
    :func:`fornet.runtime.video.readers.open_reader` runs this reader on a thread of its own.
    """

    def __init__(self, spec: SourceSpec, gpu: int = 0) -> None:
        if spec.kind not in ("rtsp", "http"):
            raise SourceError(f"NvdecStreamReader reads rtsp and http(s) streams, not {spec.kind} inputs")
        nvc = _load_pynvvideocodec()
        self._name = spec.display_name
        try:
            self._demuxer: Any = nvc.CreateDemuxer(filename=spec.location)
            self._decoder: Any = nvc.CreateDecoder(gpuid=gpu, codec=self._demuxer.GetNvCodecId(),
                                                   usedevicememory=True, outputColorType=nvc.OutputColorType.RGB)
            rate = self._demuxer.FrameRate()
        except Exception as exc:  # PyNvVideoCodec raises plain RuntimeErrors/ValueErrors
            raise SourceError(f"NVDEC cannot open {spec.display_name}: {exc}; check that the server runs and the "
                              "URL (path, credentials) is right (ffprobe URL shows what the server answers), or "
                              "read it on the CPU with --input-backend pyav") from exc
        self.fps: float | None = float(rate) if rate and rate > 0 else None
        self.total: int | None = None
        self._frames: deque[np.ndarray | DeviceArray] = deque()
        self._ended = False
        #: Hand frames over in device memory (a pipeline whose segmenter pre/post-processes on the GPU).
        self.device_frames = False

    def read(self, timeout_s: float) -> np.ndarray | DeviceArray | None:
        """The next frame (BGR; host memory, or device memory with :attr:`device_frames`), blocking
        until one is decoded (``timeout_s`` is not honoured here: see the class docstring); ``EOFError``
        after the last."""
        while not self._frames:
            if self._ended or self._decoder is None:
                raise EOFError
            try:
                packet = self._demuxer.Demux()
                # each frame goes to the host before the next Decode may reuse its device memory
                self._frames.extend(_bgr_frame(frame, self._name, self.device_frames)
                                    for frame in self._decoder.Decode(packet))
            except SourceError:
                raise
            except Exception as exc:  # PyNvVideoCodec raises plain RuntimeErrors and its PyNvVCException*
                raise SourceError(f"NVDEC stopped reading {self._name}: {exc}") from exc
            self._ended = packet.bsl == 0  # the empty packet: end of stream (it flushed the decoder)
        return self._frames.popleft()

    def close(self) -> None:
        """Drop the decoder and the demuxer (the connection closes, the device memory goes)."""
        self._decoder = None
        self._demuxer = None
        self._frames.clear()
