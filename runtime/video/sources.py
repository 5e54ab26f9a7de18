"""``VideoSource``: one input as a stream of :class:`~fornet.runtime.video.frames.Frame`, with
live semantics, a watchdog and reconnection.

    with VideoSource("rtsp://127.0.0.1:8554/cam", watchdog_s=3) as source:
        for frame in source:            # Frame(image, source_id, index, capture_time, ...)
            ...

A reader thread fills a bounded :class:`~fornet.runtime.video.buffer.FrameBuffer`:

* files and image folders deliver every frame in order (the reader waits for room);
* live inputs (cameras, RTSP/HTTP streams, GStreamer pipelines) keep the newest frames and count
  the dropped ones, so latency stays bounded when segmentation is slower than the camera.

On a live input, a :class:`~fornet.runtime.video.watchdog.Watchdog` (no new frame for
``watchdog_s``), the end of the stream or a read error closes the connection and reopens it after
exponentially growing pauses (:class:`~fornet.runtime.video.watchdog.Backoff`), at most
``max_reconnects`` times in a row (``None``: for ever). Each gap is logged with its length and kept
in :attr:`VideoSource.gaps`. The first connection must succeed: a wrong path, URL or camera is an
error at once, not a silent retry loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from fornet.runtime.video.buffer import FrameBuffer
from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.frames import Frame
from fornet.runtime.video.readers import Reader, choose_backend, open_reader
from fornet.runtime.video.stats import stage_range
from fornet.runtime.video.uri import SourceSpec, parse_source
from fornet.runtime.video.watchdog import Backoff, Watchdog

log = logging.getLogger("fornet.video")

#: Default buffer capacity: the newest frame for live inputs, a few frames of read-ahead for files.
DEFAULT_BUFFER = {True: 1, False: 4}


@dataclass(frozen=True)
class Gap:
    """A stretch without frames on a live input.

    Attributes:
        source_id: the source.
        started: wall-clock time of the last frame before the gap.
        seconds: from that frame to the first frame after the gap.
        reason: what ended the stream (watchdog, end of stream, read error).
        attempts: reconnection attempts it took.
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
        backend: ``auto``, ``pyav``, ``opencv`` or ``gstreamer`` (see :mod:`fornet.runtime.video.readers`).
        buffer: frames held between the reader and the consumer (default 1 live, 4 for files).
        watchdog_s: live inputs: reconnect when no frame arrived for this long.
        max_reconnects: live inputs: give up after this many failed attempts in a row (``None``: never).
        backoff_s: first pause before reconnecting (doubles up to 8 s).

    Raises:
        SourceError: the input cannot be parsed or opened.
    """

    def __init__(self, uri: str, source_id: int = 0, *, backend: str = "auto", buffer: int | None = None,
                 watchdog_s: float = 5.0, max_reconnects: int | None = None, backoff_s: float = 0.5) -> None:
        if watchdog_s <= 0:
            raise SourceError(f"watchdog_s must be positive, got {watchdog_s}")
        if buffer is not None and buffer < 1:
            raise SourceError(f"--buffer must be at least 1 frame, got {buffer}")
        self.spec: SourceSpec = parse_source(uri)
        self.source_id = source_id
        self.live = self.spec.live
        self.backend = choose_backend(self.spec, backend)
        self.watchdog_s = watchdog_s
        capacity = buffer or DEFAULT_BUFFER[self.live]
        self.buffer: FrameBuffer[Frame] = FrameBuffer(capacity, "latest" if self.live else "wait")
        self._backoff = Backoff(initial_s=backoff_s, limit=max_reconnects)
        self._reader: Reader = open_reader(self.spec, self.backend, capacity, watchdog_s)
        #: Frames per second the input declares (``None`` for cameras and image folders, usually).
        self.fps = self._reader.fps
        #: Number of frames of a file input, when known (for progress).
        self.total_frames = self._reader.total
        self.frames_read = 0
        self.reconnects = 0
        self.gaps: list[Gap] = []
        #: The error that ended the source early (a corrupt file, or a live input given up on).
        self.error: SourceError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notify: threading.Event | None = None

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
                    now = time.time()
                    last_frame_wall = now
                    frame = Frame(image, self.source_id, self.frames_read, now, time.monotonic(),
                                  time.perf_counter() - start)
                    self.frames_read += 1
                    if not self.buffer.put(frame, self._stop):
                        return
                    if self._notify is not None:
                        self._notify.set()
                    continue
                if watchdog.expired():
                    failure = f"no new frame for {watchdog.silence_s:.1f} s (watchdog)"
            if failure is not None:
                if lost is None:
                    lost = failure
                    log.warning("%s: lost (%s); reconnecting", self.name, failure)
                self._reconnect()
                watchdog.feed()

    def _record_gap(self, started: float, reason: str) -> None:
        gap = Gap(self.source_id, started, time.time() - started, reason, self._backoff.attempts)
        self.gaps.append(gap)
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
                self._reader = open_reader(self.spec, self.backend, self.buffer.capacity, self.watchdog_s)
            except SourceError as exc:
                log.info("%s: reconnection attempt %d failed: %s", self.name, self._backoff.attempts, exc)
                continue
            self.reconnects += 1
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
