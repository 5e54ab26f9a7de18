"""H.264 video files that stay playable: written under a temporary name, finalised, then renamed.

An MP4 is only playable once its index (``moov``) is written, which happens when the container is
closed. :class:`H264Writer` encodes with PyAV (``libx264``, FFmpeg's own wheels carry it; or NVENC,
``h264_nvenc``, where the GPU has an encoder: :func:`choose_encoder`) into a temporary file beside the
target (``.NAME.<pid>.*.tmp``, :func:`fornet.atomic.temporary_file`);
:meth:`H264Writer.close` flushes the encoder, closes the container and renames it onto the final
name, so the file under the final name is always complete. The pipeline closes its sinks on Ctrl-C
and SIGTERM too; :meth:`H264Writer.abort` (an error before the first frame) removes the temporary
file and leaves nothing, and one left by a run killed outright is removed by the next write of the
same file.

Frames are stamped one frame period apart, or, for a writer made with ``timed=True``, at the times
given to :meth:`H264Writer.write` in milliseconds (a live source's capture times: the video then plays
in real time and its gaps stay visible, whatever the camera's rate).
"""

from __future__ import annotations

import contextlib
import functools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from fornet.atomic import ensure_writable_dir, publish, temporary_file
from fornet.runtime.video.errors import SinkError

#: The chroma format of every H.264 we write: 4:2:0, which hardware decoders (Jetson's, DeepStream's),
#: openh264 and browsers play (4:4:4 is High 4:4:4, which they cannot decode).
H264_PIX_FMT = "yuv420p"
#: The H.264 profile of the files (libx264's name), set explicitly rather than left to the encoder.
H264_FILE_PROFILE = "high"

#: The H.264 encoders of files, by the name ``--encoder`` takes: FFmpeg's encoder and its options
#: (``crf`` and ``preset`` are x264's; NVENC takes its constant quality as ``cq``, preset p1..p7).
ENCODERS = {"x264": "libx264", "nvenc": "h264_nvenc"}
#: What ``--encoder`` takes: ``auto`` is NVENC where this machine's GPU has an encoder, else x264.
ENCODER_CHOICES = ("auto", *ENCODERS)


@functools.cache
def nvenc_opens() -> bool:
    """Whether FFmpeg's NVENC H.264 encoder opens here (an NVIDIA driver and a GPU with an encoder).

    Checked once, by opening a 256x256 encoder: the H100 and H200 have NVDEC but no NVENC, Jetson Orin
    Nano has no encoder, and without a driver FFmpeg refuses at once.
    """
    import av

    try:
        context = av.CodecContext.create(ENCODERS["nvenc"], "w")
        context.width, context.height, context.pix_fmt = 256, 256, H264_PIX_FMT
        context.time_base = Fraction(1, 25)
        context.open()
    except (av.error.FFmpegError, OSError, ValueError):
        return False
    return True


def choose_encoder(requested: str = "auto") -> str:
    """The file encoder that runs: ``requested``, or for ``auto`` NVENC where it opens, else x264."""
    if requested not in ENCODER_CHOICES:
        raise SinkError(f"unknown encoder {requested!r}; choose one of {', '.join(ENCODER_CHOICES)}")
    if requested == "auto":
        return "nvenc" if nvenc_opens() else "x264"
    if requested == "nvenc" and not nvenc_opens():
        raise SinkError("--encoder nvenc: NVENC does not open on this machine (no NVIDIA driver, or a GPU without "
                        "a video encoder such as the H100, H200 or Jetson Orin Nano); use --encoder x264 or auto")
    return requested


#: The time base of a ``timed`` writer.
MILLISECOND = Fraction(1, 1000)
#: Container format by extension.
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


class H264Writer:
    """Encode BGR frames of one size into an H.264 file (see the module docstring).

    Args:
        path: the final file (``.mp4``, ``.mkv``, ``.mov`` or ``.avi``).
        size: ``(H, W)`` of the frames; odd sizes are cropped by one pixel (H.264 4:2:0 needs even ones).
        fps: frame rate written into the file.
        crf: x264 constant rate factor, NVENC constant quality (lower: better quality, bigger files).
        preset: x264 speed preset (NVENC uses its middle preset, p4).
        encoder: ``x264`` or ``nvenc`` (:func:`choose_encoder` picks for ``auto``).
        timed: frames carry their own times (:meth:`write`'s ``time_s``), stamped to the millisecond.
    """

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int], fps: float, crf: int = 23,
                 preset: str = "veryfast", encoder: str = "x264", timed: bool = False) -> None:
        import av

        self.path = Path(path)
        container = CONTAINERS.get(self.path.suffix.lower())
        if container is None:
            raise SinkError(f"cannot write video {self.path.name}: use one of {', '.join(CONTAINERS)}")
        ensure_writable_dir(self.path.parent if str(self.path.parent) else ".")
        self._tmp = temporary_file(self.path)
        self.height, self.width = size[0] - size[0] % 2, size[1] - size[1] % 2
        if self.height < 2 or self.width < 2:
            raise SinkError(f"frames of {size[0]}x{size[1]} are too small to encode")
        try:
            self._container = av.open(str(self._tmp), "w", format=container)
            self._stream = self._container.add_stream(ENCODERS[encoder], rate=Fraction(fps).limit_denominator(1000))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            raise SinkError(f"cannot start the H.264 encoder for {self.path}: {exc}; install PyAV with "
                            "libx264 (pip install av)") from exc
        self.encoder = encoder
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = H264_PIX_FMT
        quality = {"crf": str(crf), "preset": preset} if encoder == "x264" else {"cq": str(crf), "preset": "p4"}
        self._stream.options = {**quality, "profile": H264_FILE_PROFILE}
        self.timed = timed
        if timed:
            self._stream.codec_context.time_base = MILLISECOND
        self.frames = 0
        self._pts = -1
        self._closed = False

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        """Encode one BGR frame (of the size given at construction).

        ``time_s``: a ``timed`` writer's frame time, seconds since its first frame (a live source's
        capture time; a frame less than 1 ms after the previous one goes 1 ms after it). Other writers
        stamp the frames one period apart and take no times.
        """
        import av

        if self.timed == (time_s is None):
            raise SinkError("a timed H264Writer takes each frame's time_s, an untimed one none")

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self.height, : self.width]),
                                           format="bgr24")
        self._pts = self._pts + 1 if time_s is None else max(round(time_s / MILLISECOND), self._pts + 1)
        frame.pts = self._pts
        if time_s is not None:
            frame.time_base = MILLISECOND
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush, finalise and rename onto the final name; return it (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            finally:
                self._container.close()
            publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Stop and delete the temporary file; nothing appears under the final name."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._container.close()
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
