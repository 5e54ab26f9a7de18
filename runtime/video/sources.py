"""``VideoSource``: one input as a stream of :class:`~fornet.runtime.video.frames.Frame`, with
live semantics, a watchdog and reconnection.

    with VideoSource("rtsp://127.0.0.1:8554/cam", watchdog_s=3) as source:
        for frame in source:            # Frame(image, source_id, index, capture_time, ...)
            ...

A reader thread fills a bounded :class:`~fornet.runtime.video.buffer.FrameBuffer`:

* files and image folders deliver every frame in order (the reader waits for room);
* live inputs (cameras, RTSP/HTTP streams, GStreamer pipelines) keep the newest frames and count
  the dropped ones, so latency stays bounded when segmentation is slower than the camera.

``input_kind`` overrides the choice for streams and pipelines: ``file`` reads a recorded stream or a
finite ``gst://`` pipeline to its end (a pipeline with ``filesrc`` or ``num-buffers`` is one by
default), ``live`` treats a stream as live. A file input that ends before the frame count its
container declares (a truncated file) ends with a warning, kept in :attr:`VideoSource.warning`.

On a live input, a :class:`~fornet.runtime.video.watchdog.Watchdog` (no new frame for
``watchdog_s``), the end of the stream or a read error closes the connection and reopens it after
exponentially growing pauses (:class:`~fornet.runtime.video.watchdog.Backoff`), at most
``max_reconnects`` times in a row (``None``: for ever). Each gap is logged with its length and kept
in :attr:`VideoSource.gaps`; :attr:`VideoSource.reconnects` counts one reconnection per gap whatever
the reader (a GStreamer pipeline "opens" even while its server is down, so attempts are not
reconnections). The first connection must succeed: a wrong path, URL or camera is an
error at once, not a silent retry loop. A live input must also deliver its first frame within
``open_timeout_s`` (a refused connection, a wrong RTSP path or a login the server refuses fails
within a second or so, a silent server at the timeout); reconnection only ever applies to a source
that has delivered frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from fornet.runtime.cuda.device_array import DeviceArray
from fornet.runtime.video.buffer import FrameBuffer
from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.frames import Frame
from fornet.runtime.video.readers import Reader, choose_backend, decode_to_device, open_reader
from fornet.runtime.video.stats import stage_range
from fornet.runtime.video.uri import SourceSpec, parse_source
from fornet.runtime.video.watchdog import Backoff, Watchdog

log = logging.getLogger("fornet.video")

#: Default buffer capacity: the newest frame for live inputs, a few frames of read-ahead for files.
DEFAULT_BUFFER = {True: 1, False: 4}
#: ``input_kind`` values: ``auto`` (by the input), ``file`` (every frame, to the end), ``live``.
INPUT_KINDS = ("auto", "file", "live")
#: What an image input's outputs are named after: its file stem without this Cityscapes suffix.
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
#: Seconds a live input has to deliver its first frame.
DEFAULT_OPEN_TIMEOUT_S = 10.0
#: What to check when a live input of a kind delivers no first frame.
FIRST_FRAME_FIX = {
    "rtsp": "check that the server runs and that the address, port, path and login are right (ffprobe URL shows "
            "what the server answers)",
    "http": "check that the server runs and that the URL is right (ffprobe URL shows what the server answers)",
    "v4l2": "check that the camera is connected and not in use by another program (v4l2-ctl --list-devices)",
    "csi": "check the sensor index and that nvargus-daemon runs (gst-launch-1.0 nvarguscamerasrc ! fakesink)",
    "gst": "run the pipeline with gst-launch-1.0 (the appsink replaced by fakesink) to see where it stops",
}


@dataclass(frozen=True)
class Gap:
    """A stretch without frames on a live input.

    Attributes:
        source_id: the source.
        started: wall-clock time of the last frame before the gap.
        seconds: from that frame to the first frame after the gap.
        reason: what ended the stream (watchdog, end of stream, read error).
        attempts: reconnection attempts it took (one reconnection).
    """

    source_id: int
    started: float
    seconds: float
    reason: str
    attempts: int


class VideoSource:
    """One input by URI (see the module docstring and :mod:`fornet.runtime.video.uri`).

    Args:
        uri: the input (path, glob, ``file://``, ``v4l2://``, ``csi://``, ``rtsp://``, ``http(s)://``, ``gst://``).
        source_id: index of this source in a pipeline.
        backend: ``auto``, ``pyav``, ``opencv``, ``gstreamer`` or ``nvdec`` (see
            :mod:`fornet.runtime.video.readers`).
        buffer: frames held between the reader and the consumer (default 1 live, 4 for files).
        watchdog_s: live inputs: reconnect when no frame arrived for this long.
        max_reconnects: live inputs: give up after this many failed attempts in a row (``None``: never).
        backoff_s: first pause before reconnecting (doubles up to 8 s).
        open_timeout_s: live inputs: the first frame must arrive within this many seconds.
        input_kind: ``auto``, ``file`` or ``live`` (see the module docstring).
        max_frames: file inputs: read no more than this many frames (a run's ``--max-frames``).

    Raises:
        SourceError: the input cannot be parsed or opened, or a live input delivered no first frame.
    """

    def __init__(self, uri: str, source_id: int = 0, *, backend: str = "auto", buffer: int | None = None,
                 watchdog_s: float = 5.0, max_reconnects: int | None = None, backoff_s: float = 0.5,
                 open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S, input_kind: str = "auto",
                 max_frames: int | None = None) -> None:
        if watchdog_s <= 0 or open_timeout_s <= 0:
            raise SourceError(f"watchdog_s and open_timeout_s must be positive, got {watchdog_s} and {open_timeout_s}")
        if buffer is not None and buffer < 1:
            raise SourceError(f"--buffer must be at least 1 frame, got {buffer}")
        if input_kind not in INPUT_KINDS:
            raise SourceError(f"unknown input kind {input_kind!r}; choose one of {', '.join(INPUT_KINDS)}")
        self.spec: SourceSpec = parse_source(uri)
        if input_kind == "live" and self.spec.kind in ("video", "images"):
            raise SourceError(f"{self.spec.display_name} is stored, not live: --input-kind live applies to cameras, "
                              "streams and gst:// pipelines; drop --input-kind live")
        self.source_id = source_id
        self.live = self.spec.live if input_kind == "auto" else input_kind == "live"
        self._limit = None if self.live else max_frames
        #: The names of an image input's frames (:attr:`Frame.name`); empty for other inputs.
        self.output_names = _output_names(self.spec.files)
        self.backend = choose_backend(self.spec, backend)
        self.watchdog_s = watchdog_s
        capacity = buffer or DEFAULT_BUFFER[self.live]
        self.buffer: FrameBuffer[Frame] = FrameBuffer(capacity, "latest" if self.live else "wait")
        self._backoff = Backoff(initial_s=backoff_s, limit=max_reconnects)
        self._reader: Reader = open_reader(self.spec, self.backend, capacity, watchdog_s, self.live)
        #: Frames per second the input declares (``None`` for cameras and image folders, usually).
        self.fps = self._reader.fps
        #: Number of frames of a file input, when known (for progress).
        self.total_frames = self._reader.total
        self.frames_read = 0
        #: Reconnections: one per gap after which frames arrived again.
        self.reconnects = 0
        self.gaps: list[Gap] = []
        #: The error that ended the source early (a corrupt file, or a live input given up on).
        self.error: SourceError | None = None
        #: Why a file input ended early without an error (a truncated file), else ``None``.
        self.warning: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notify: threading.Event | None = None
        self._device_frames = False
        if self.live:
            self._first_frame(open_timeout_s)

    def _first_frame(self, timeout_s: float) -> None:
        """Buffer the first frame of a live input; close it and raise when none arrives within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        start = time.perf_counter()
        problem = f"nothing arrived within {timeout_s:g} s (--open-timeout-s)"
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                image = self._reader.read(min(0.5, remaining))
                if image is not None:
                    self.buffer.put(self._frame(image, time.perf_counter() - start))
                    return
        except EOFError:
            problem = "the stream ended at once"
        except SourceError as exc:
            problem = str(exc)
        self._reader.close()
        raise SourceError(f"{self.name} delivered no first frame: {problem}; {FIRST_FRAME_FIX[self.spec.kind]}")

    def decode_to_device(self, on_device: bool) -> bool:
        """Have the reader hand frames over in device memory where it decodes on the GPU (NVDEC), now and
        after every reconnection; whether it will (see :func:`~fornet.runtime.video.readers.decode_to_device`)."""
        self._device_frames = on_device
        return decode_to_device(self._reader, on_device)

    def _frame(self, image: np.ndarray | DeviceArray, decode_s: float) -> Frame:
        """The next frame of this source, captured now."""
        index = self.frames_read
        name, file = (self.output_names[index], self.spec.files[index]) if self.output_names else ("", None)
        frame = Frame(image, self.source_id, index, time.time(), time.monotonic(), decode_s, name, file)
        self.frames_read += 1
        return frame

    def _end_of_file(self) -> None:
        """A file input ended: warn when it delivered fewer frames than its container declares."""
        if self.total_frames and self.frames_read < self.total_frames:
            self.warning = (f"ended after {self.frames_read} of the {self.total_frames} frames its container "
                            "declares: the file is truncated or damaged (check it with ffprobe)")
            log.warning("%s: %s", self.name, self.warning)

    @property
    def name(self) -> str:
        """The URI without any password."""
        return self.spec.display_name

    @property
    def dropped(self) -> int:
        """Frames read but replaced by newer ones before the consumer took them."""
        return self.buffer.dropped

    # -- reader thread ---------------------------------------------------------------------
    def start(self, notify: threading.Event | None = None) -> VideoSource:
        """Start reading (idempotent); ``notify`` is set whenever a frame is buffered."""
        if self._thread is None:
            self._notify = notify
            self._thread = threading.Thread(target=self._run, name=f"fornet-source-{self.source_id}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # a reader bug must end the source, not hang the pipeline
            self.error = exc if isinstance(exc, SourceError) else SourceError(f"{self.name}: {exc}")
        finally:
            self._reader.close()
            self.buffer.close()
            if self._notify is not None:
                self._notify.set()

    def _read_loop(self) -> None:
        watchdog = Watchdog(self.watchdog_s if self.live else None)
        last_frame_wall = time.time()
        lost: str | None = None
        poll_s = min(0.5, self.watchdog_s)
        while not self._stop.is_set():
            failure: str | None = None
            start = time.perf_counter()
            try:
                with stage_range("decode"):
                    image = self._reader.read(poll_s)
            except EOFError:
                if not self.live:
                    self._end_of_file()
                    return
                failure = "end of stream"
            except SourceError as exc:
                if not self.live:
                    raise
                failure = f"read error ({exc})"
            else:
                if image is not None:
                    if lost is not None:
                        self._record_gap(last_frame_wall, lost)
                        lost = None
                    watchdog.feed()
                    frame = self._frame(image, time.perf_counter() - start)
                    last_frame_wall = frame.capture_time
                    if not self.buffer.put(frame, self._stop):
                        return
                    if self._limit is not None and self.frames_read >= self._limit:
                        return
                    if self._notify is not None:
                        self._notify.set()
                    continue
                if watchdog.expired():
                    failure = f"no new frame for {watchdog.silence_s:.1f} s (watchdog)"
            if failure is not None:
                if lost is None:
                    lost = failure
                    log.warning("%s: lost (%s)%s", self.name, failure,
                                "" if self._backoff.limit == 0 else "; reconnecting")
                self._reconnect()
                watchdog.feed()

    def _record_gap(self, started: float, reason: str) -> None:
        gap = Gap(self.source_id, started, time.time() - started, reason, self._backoff.attempts)
        self.gaps.append(gap)
        self.reconnects += 1
        self._backoff.reset()
        log.warning("%s: frames again after a %.2f s gap (%s; %d attempt(s))", self.name, gap.seconds, reason,
                    gap.attempts)

    def _reconnect(self) -> None:
        self._reader.close()
        while not self._stop.is_set():
            if self._backoff.exhausted:
                if not self._backoff.attempts:
                    raise SourceError(f"{self.name}: the stream ended and reconnection is off (max_reconnects=0)")
                raise SourceError(f"{self.name}: gave up after {self._backoff.attempts} reconnection attempts; "
                                  "check the camera or server, or raise --max-reconnects")
            if self._stop.wait(self._backoff.next_delay()):
                return
            try:
                self._reader = open_reader(self.spec, self.backend, self.buffer.capacity, self.watchdog_s, self.live)
                decode_to_device(self._reader, self._device_frames)
            except SourceError as exc:
                log.info("%s: reconnection attempt %d failed: %s", self.name, self._backoff.attempts, exc)
                continue
            return

    # -- consumer side ---------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Frame | None:
        """The next buffered frame (starting the reader if needed); ``None`` on timeout or at the end."""
        self.start()
        return self.buffer.get(timeout)

    @property
    def finished(self) -> bool:
        """The input ended (or was stopped) and every buffered frame was taken."""
        return self.buffer.finished

    def __iter__(self) -> Iterator[Frame]:
        while not self.finished:
            frame = self.get(0.5)
            if frame is not None:
                yield frame
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop reading and release the input (idempotent)."""
        self._stop.set()
        self.buffer.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        else:
            self._reader.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _output_names(files: tuple[str, ...]) -> tuple[str, ...]:
    """The names of an image input's outputs: each file's stem without ``_leftImg8bit``; none when two collide."""
    names = tuple(Path(file).stem.removesuffix(CITYSCAPES_IMAGE_SUFFIX) for file in files)
    if len(set(names)) < len(names):
        log.warning("image files with the same name in different folders: outputs are numbered "
                    "<source>-<frame> instead (the per-frame records name each file)")
        return ()
    return names
