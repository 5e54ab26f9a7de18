"""Readers: one connection to one input, handing out BGR frames.

Every reader has ``read(timeout_s) -> frame | None`` (``None``: nothing new within the timeout),
raises ``EOFError`` at the end of the input and :class:`SourceError` when it fails, and has
``close()``. :func:`open_reader` picks the library:

=============  ======================================  ==========================================
input          auto                                     also possible (``backend=``)
=============  ======================================  ==========================================
video file     NVDEC where installed, else PyAV (FFmpeg)  nvdec, pyav, opencv, gstreamer
images         OpenCV ``imread``                        -
rtsp           NVDEC where installed, else GStreamer    nvdec, pyav, opencv, gstreamer
               when reachable, else PyAV
http           GStreamer when reachable, else PyAV      nvdec, pyav, opencv, gstreamer
v4l2           GStreamer when reachable, else OpenCV    opencv, gstreamer
csi, gst://    GStreamer (required)                     -
=============  ======================================  ==========================================

Stream readers are opened with bounded waits (PyAV ``timeout``, OpenCV open/read timeouts,
GStreamer ``tcp-timeout`` and a pull timeout). Those are not enough on their own: a frozen server
keeps PyAV and OpenCV blocked (or handing out stale frames) for seconds longer than asked, and
NVDEC's demuxer takes no timeout at all. For live inputs PyAV, OpenCV and NVDEC therefore open and
read on a thread of their own (:class:`Unblocked`), so ``read`` returns ``None`` on time and the
source's watchdog can act; the stuck connection is closed by its own thread when its read finally
returns.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from fornet.runtime.cuda.device_array import DeviceArray
from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.gst import GstReader, gst_available, source_pipeline
from fornet.runtime.video.nvdec import NVDEC_AUTO_STREAMS, NVDEC_KINDS, NvdecReader, NvdecStreamReader, nvdec_available
from fornet.runtime.video.uri import SourceSpec

BACKENDS: tuple[str, ...] = ("auto", "pyav", "opencv", "gstreamer", "nvdec")


class Reader(Protocol):
    """One open connection to an input (see the module docstring)."""

    #: Frames per second the input declares, when it does.
    fps: float | None
    #: Number of frames of a file input, when known.
    total: int | None

    def read(self, timeout_s: float) -> np.ndarray | DeviceArray | None: ...

    def close(self) -> None: ...


class ImageFilesReader:
    """Still images, one frame each, in the order given."""

    def __init__(self, files: tuple[str, ...]) -> None:
        self._files = iter(files)
        self.fps: float | None = None
        self.total: int | None = len(files)

    def read(self, timeout_s: float) -> np.ndarray | None:
        import cv2

        path = next(self._files, None)
        if path is None:
            raise EOFError
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image {path}: corrupt or not an image; remove or replace it")
        return image

    def close(self) -> None:
        self._files = iter(())


class PyAVReader:
    """FFmpeg through PyAV: files and network streams (RTSP over TCP)."""

    def __init__(self, spec: SourceSpec, timeout_s: float) -> None:
        import av

        options = {"rtsp_transport": "tcp"} if spec.kind == "rtsp" else {}
        timeout = (max(timeout_s, 3.0), timeout_s) if spec.live else None
        try:
            self._container = av.open(spec.location, options=options, timeout=timeout)
        except av.error.FileNotFoundError as exc:
            raise SourceError(f"input not found: {spec.display_name}; fix the path or URL") from exc
        except (av.error.FFmpegError, OSError) as exc:
            what = "unreachable or refused" if spec.live else "corrupt or not a video"
            raise SourceError(f"cannot open {spec.display_name}: {what} ({exc}); check it with ffprobe, and for "
                              "a stream that the server runs and the URL (path, credentials) is right") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{spec.display_name} has no video stream; pass a video file or stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self.total: int | None = None if spec.live else (stream.frames or None)
        self._spec = spec
        self._frames: Iterator[object] = self._container.decode(stream)

    def read(self, timeout_s: float) -> np.ndarray | None:
        import av

        try:
            frame = next(self._frames)
        except StopIteration:
            raise EOFError from None
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"reading {self._spec.display_name} failed: {exc}") from exc
        return frame.to_ndarray(format="bgr24")  # type: ignore[attr-defined]

    def close(self) -> None:
        self._container.close()


class OpenCVReader:
    """``cv2.VideoCapture`` (FFmpeg or V4L2 in pip's OpenCV; no GStreamer there)."""

    def __init__(self, spec: SourceSpec, timeout_s: float) -> None:
        import cv2

        if spec.kind == "rtsp":
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        api = cv2.CAP_V4L2 if spec.kind == "v4l2" else cv2.CAP_FFMPEG
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(max(timeout_s, 3.0) * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout_s * 1000)]
        self._capture = cv2.VideoCapture(spec.location, api, params)
        if not self._capture.isOpened():
            raise SourceError(f"OpenCV cannot open {spec.display_name}: missing, busy, corrupt or unreachable; "
                              "check the device or URL, or try another reader (--input-backend pyav|gstreamer)")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total: int | None = count if count > 0 and not spec.live else None
        self._live = spec.live
        self._name = spec.display_name

    def read(self, timeout_s: float) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if not ok:
            if self._live:
                raise SourceError(f"OpenCV stopped reading {self._name}")
            raise EOFError
        return frame

    def close(self) -> None:
        self._capture.release()


#: Readers that block in ``read`` (and in their open): :class:`Unblocked` runs them for live inputs.
BlockingReader = PyAVReader | OpenCVReader | NvdecStreamReader


class GstSourceReader:
    """A GStreamer pipeline ending in a BGR appsink (see :mod:`fornet.runtime.video.gst`)."""

    def __init__(self, spec: SourceSpec, buffers: int, timeout_s: float, live: bool) -> None:
        location = Path(spec.location).absolute().as_uri() if spec.kind == "video" else spec.location
        pipeline = source_pipeline(spec.kind, location, buffers, timeout_s=timeout_s, live=live)
        self._reader = GstReader(pipeline, spec.display_name)
        self.fps: float | None = None
        self.total: int | None = None

    def read(self, timeout_s: float) -> np.ndarray | None:
        return self._reader.read(timeout_s)

    def close(self) -> None:
        self._reader.close()


class Unblocked:
    """Open and run a blocking reader on its own thread; ``read(timeout_s)`` returns ``None`` on time.

    The thread owns the inner reader: it opens it (``open_inner``), reads, hands frames over one at a
    time, and closes the reader when it ends (end of input, error, or :meth:`close`), so no call
    crosses threads. The constructor waits for the open: its :class:`SourceError` is raised here, and
    an open still blocked after ``open_timeout_s`` (``None``: no limit, for readers that bound their
    own open) is an error too; that reader is closed by its thread once its open returns.
    """

    def __init__(self, open_inner: Callable[[], BlockingReader], name: str,
                 open_timeout_s: float | None = None) -> None:
        self._handoff: queue.Queue[np.ndarray | DeviceArray | BaseException] = queue.Queue(maxsize=1)
        self._opened: queue.Queue[BlockingReader | BaseException] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(open_inner,), name="fornet-reader", daemon=True)
        self._thread.start()
        try:
            opened = self._opened.get(timeout=open_timeout_s)
        except queue.Empty:
            self._stop.set()
            raise SourceError(f"{name} did not answer within {open_timeout_s:g} s of opening (--watchdog-s, at "
                              "least 3 s); check that the server runs and that the address, port, path and login "
                              "are right (ffprobe URL shows what the server answers)") from None
        if isinstance(opened, BaseException):
            raise opened
        self.fps = opened.fps
        self.total = opened.total
        #: The reader the thread owns: only to set its :func:`decode_to_device` flag from here.
        self.inner = opened

    def _run(self, open_inner: Callable[[], BlockingReader]) -> None:
        try:
            inner = open_inner()
        except BaseException as exc:  # handed to the constructor, which raises it
            self._opened.put(exc)
            return
        self._opened.put(inner)
        try:
            while not self._stop.is_set():
                try:
                    item: np.ndarray | DeviceArray | BaseException | None = inner.read(1.0)
                except (EOFError, SourceError) as exc:
                    item = exc
                if item is None:
                    continue
                while not self._stop.is_set():
                    try:
                        self._handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if isinstance(item, BaseException):
                    return
        finally:
            inner.close()

    def read(self, timeout_s: float) -> np.ndarray | DeviceArray | None:
        try:
            item = self._handoff.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Ask the thread to stop; it closes the connection when its current read returns."""
        self._stop.set()


def decode_to_device(reader: Reader, on_device: bool) -> bool:
    """Have ``reader`` hand frames over in device memory where it decodes on the GPU (NVDEC); whether it will.

    A pipeline whose segmenter pre/post-processes on the GPU asks for it: the frame then goes from the
    decoder to the pre kernel without leaving the GPU. Readers that decode on the CPU ignore it.
    """
    target = reader.inner if isinstance(reader, Unblocked) else reader
    if not isinstance(target, NvdecReader | NvdecStreamReader):
        return False
    target.device_frames = on_device
    return on_device


def choose_backend(spec: SourceSpec, backend: str = "auto") -> str:
    """The library that reads ``spec`` (see the module docstring's table)."""
    if backend not in BACKENDS:
        raise SourceError(f"unknown input backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if spec.kind == "images":
        return "images"
    if spec.kind in ("csi", "gst"):
        if backend not in ("auto", "gstreamer"):
            raise SourceError(f"{spec.kind} inputs need GStreamer; drop --input-backend {backend}")
        return "gstreamer"
    if backend == "nvdec" and spec.kind not in NVDEC_KINDS:
        raise SourceError(f"NVDEC reads video files and rtsp/http streams, not {spec.kind} inputs; use "
                          "--input-backend auto (or opencv|gstreamer)")
    if backend != "auto":
        return backend
    if spec.kind == "video" or spec.kind in NVDEC_AUTO_STREAMS:
        if nvdec_available():
            return "nvdec"
        if spec.kind == "video":
            return "pyav"
    if spec.kind in ("rtsp", "http", "v4l2") and gst_available():
        return "gstreamer"
    return "opencv" if spec.kind == "v4l2" else "pyav"


def open_reader(spec: SourceSpec, backend: str, buffers: int, timeout_s: float, live: bool | None = None) -> Reader:
    """Open ``spec`` with ``backend`` (as :func:`choose_backend` returned); ``live``: how a ``gst://`` pipeline
    is read (default: ``spec.live``)."""
    if backend == "images":
        return ImageFilesReader(spec.files)
    if backend == "nvdec":
        if spec.kind == "video":
            return NvdecReader(spec)
        # its demuxer has no timeout of its own: the open is bounded like PyAV's
        return Unblocked(lambda: NvdecStreamReader(spec), spec.display_name, max(timeout_s, 3.0))
    if backend in ("pyav", "opencv"):
        def open_inner() -> PyAVReader | OpenCVReader:
            return PyAVReader(spec, timeout_s) if backend == "pyav" else OpenCVReader(spec, timeout_s)

        return Unblocked(open_inner, spec.display_name) if spec.live else open_inner()
    return GstSourceReader(spec, buffers, timeout_s, spec.live if live is None else live)
