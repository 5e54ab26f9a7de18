"""``VideoPipeline``: sources -> segmentation -> rendering and sinks, overlapped in threads.

    from fornet.runtime import Segmenter
    from fornet.runtime.video import VideoPipeline, VideoSource, open_sink

    with Segmenter("export/fornet.onnx") as seg:
        sources = [VideoSource("rtsp://cam1/live", 0), VideoSource("rtsp://cam2/live", 1)]
        pipeline = VideoPipeline(seg, sources, [open_sink("out.mp4")], render="overlay", alpha=0.5)
        for result in pipeline:                       # or pipeline.run(callback)
            result.frame.image, result.labels, result.times, result.age_s
        print(pipeline.report().format())

Threads: one reader per source (decode), one segmentation thread that takes up to the engine's
batch of frames across the sources (one engine call; round robin, so no source starves) and the
caller's thread, which renders, writes the sinks (per-frame records last, once the encode time and
the frame age are known), runs the callback and yields. Queues between
them are bounded. Closing (the end of the inputs, ``max_frames``, :meth:`stop`, Ctrl-C, an error)
finalises every sink that received frames (a playable video) and removes the others' partial files.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from fornet.runtime.cuda.device_array import DeviceArray
from fornet.runtime.video.errors import VideoError
from fornet.runtime.video.frames import Frame, FrameResult
from fornet.runtime.video.sinks import JsonLinesSink, Sink
from fornet.runtime.video.sources import VideoSource
from fornet.runtime.video.stats import PipelineReport, PipelineStats, stage_range, timed

if TYPE_CHECKING:
    from fornet.runtime.segmenter import Segmenter

Render = Literal["overlay", "mask", "none"]
Callback = Callable[[np.ndarray | DeviceArray, np.ndarray, FrameResult], None]
_END = object()


class VideoPipeline:
    """Segment the frames of ``sources`` and send the results to ``sinks`` (see the module docstring).

    Args:
        segmenter: any :class:`~fornet.runtime.segmenter.Segmenter` (TensorRT, ONNX Runtime, PyTorch).
        sources: the inputs; their ``source_id`` values must be distinct.
        sinks: the outputs.
        render: ``overlay`` (frame blended with class colours), ``mask`` (class colours) or ``none``.
        alpha: overlay opacity.
        batch: frames per engine call (default: the engine's static batch, else one per source).
        queue_size: results waiting for rendering.
        max_frames: stop after this many results (no more frames are segmented than that).
        duration_s: stop after this many seconds.
    """

    def __init__(self, segmenter: Segmenter, sources: Sequence[VideoSource], sinks: Sequence[Sink] = (), *,
                 render: Render = "overlay", alpha: float = 0.5, batch: int | None = None, queue_size: int = 4,
                 max_frames: int | None = None, duration_s: float | None = None) -> None:
        if not sources:
            raise VideoError("a pipeline needs at least one source")
        if len({s.source_id for s in sources}) != len(sources):
            raise VideoError("sources need distinct source_id values (0, 1, 2, ...)")
        if render not in ("overlay", "mask", "none"):
            raise VideoError(f"unknown render mode {render!r}; choose overlay, mask or none")
        self.segmenter = segmenter
        self.sources = list(sources)
        self.sinks = list(sinks)
        # Per-frame records are written last, with the encode time and the frame age known.
        self._records = [sink for sink in self.sinks if isinstance(sink, JsonLinesSink)]
        self._outputs = [sink for sink in self.sinks if not isinstance(sink, JsonLinesSink)]
        self.render = render
        self.alpha = alpha
        self.batch = batch or segmenter.io.batch or len(self.sources)
        self.max_frames = max_frames
        self.duration_s = duration_s
        self.stats = PipelineStats()
        palette = segmenter.io.palette_bgr
        self._lut = np.zeros((256, 3), np.uint8)
        self._lut[: len(palette)] = palette
        self._results: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._next_source = 0
        self._taken = 0  # frames handed to the segmenter

    # -- segmentation thread -----------------------------------------------------------------
    def _gather(self) -> list[Frame] | None:
        """Up to ``batch`` frames, round robin over the sources; ``None`` when all have ended or
        ``max_frames`` were taken."""
        limit = self.batch if self.max_frames is None else min(self.batch, self.max_frames - self._taken)
        if limit <= 0:
            return None
        while not self._stop.is_set():
            frames: list[Frame] = []
            progress = True
            while progress and len(frames) < limit:
                progress = False
                count = len(self.sources)
                for offset in range(count):
                    if len(frames) >= limit:
                        break
                    frame = self.sources[(self._next_source + offset) % count].buffer.get(0)
                    if frame is not None:
                        frames.append(frame)
                        progress = True
            self._next_source = (self._next_source + 1) % len(self.sources)
            if frames:
                self._taken += len(frames)
                return frames
            if all(source.finished for source in self.sources):
                return None
            self._ready.wait(0.1)
            self._ready.clear()
        return None

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _segment_loop(self) -> None:
        # With the CUDA pre/post kernels (TensorRT) the overlay is blended on the GPU with the labels.
        gpu_alpha = self.alpha if self.render == "overlay" and self.segmenter.gpu_prepost else None
        try:
            while (frames := self._gather()) is not None:
                with stage_range("segment"):
                    segmented = self.segmenter.segment_batch([frame.image for frame in frames], gpu_alpha)
                times = self.segmenter.last_times
                self.stats.add_batch(len(frames))
                share = len(frames)
                for frame, result in zip(frames, segmented, strict=True):
                    stage_times = {"decode": frame.decode_s}
                    if times is not None:
                        stage_times.update(pre=times.pre / share, infer=times.infer / share, post=times.post / share)
                    if not self._put(FrameResult(frame, result.labels, result.overlay, stage_times)):
                        return
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
        finally:
            self._put(_END)

    # -- caller's thread ---------------------------------------------------------------------
    def _render(self, result: FrameResult) -> None:
        if result.overlay is not None:  # blended on the GPU
            return
        if self.render == "overlay":
            image = result.frame.image
            if isinstance(image, DeviceArray):  # start() asks for device frames only with the GPU overlay
                raise VideoError("a device frame reached the CPU overlay; render with the GPU pre/post kernels")
            result.overlay = self.segmenter.overlay(image, result.labels, self.alpha)
        elif self.render == "mask":
            result.overlay = self._lut[result.labels]

    def start(self) -> None:
        """Start the sources and the segmentation thread (``__iter__`` does it)."""
        if self._thread is None:
            # With the GPU pre/post kernels, NVDEC frames stay on the GPU from the decoder to the overlay.
            on_device = self.segmenter.gpu_prepost
            for source in self.sources:
                source.decode_to_device(on_device)
                source.start(self._ready)
            self.stats.restart_clock()
            self._thread = threading.Thread(target=self._segment_loop, name="fornet-segment", daemon=True)
            self._thread.start()

    def _next(self) -> FrameResult | None:
        while True:
            try:
                item = self._results.get(timeout=0.5)
            except queue.Empty:
                if self._thread is None or not self._thread.is_alive():
                    return None
                continue
            return None if item is _END else item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[FrameResult]:
        self.start()
        started = time.monotonic()
        try:
            while (result := self._next()) is not None:
                with timed(result.times, "render"):
                    self._render(result)
                with timed(result.times, "encode"):
                    for sink in self._outputs:
                        sink.write(result)
                result.age_s = time.monotonic() - result.frame.capture_monotonic
                for sink in self._records:
                    sink.write(result)
                self.stats.add(result)
                yield result
                if self.max_frames is not None and self.stats.frames >= self.max_frames:
                    break
                if self.duration_s is not None and time.monotonic() - started >= self.duration_s:
                    break
        finally:
            self.close()
        self._raise_errors()

    def _raise_errors(self) -> None:
        if self._error is not None:
            raise self._error
        for source in self.sources:
            if source.error is not None:
                raise source.error

    def run(self, callback: Callback | None = None) -> PipelineReport:
        """Process every frame, calling ``callback(image, labels, result)`` for each; return the report."""
        for result in self:
            if callback is not None:
                callback(result.frame.image, result.labels, result)
        return self.report()

    def report(self) -> PipelineReport:
        """Timing so far (callable from any thread, e.g. a signal handler)."""
        return self.stats.report(self.sources, "cuda-events" if self.segmenter.gpu_prepost else "wall")

    def stop(self) -> None:
        """Ask the pipeline to finish: results in flight are still delivered, then it closes."""
        self._stop.set()
        for source in self.sources:
            source.buffer.close()

    def close(self) -> None:
        """Stop the threads and the sources; finalise the sinks that got frames, remove partial files of the rest."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for source in self.sources:
            source.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for sink in self.sinks:
            if self.stats.frames:
                sink.close()
            else:
                sink.abort()
