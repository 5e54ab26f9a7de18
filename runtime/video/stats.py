"""Per-stage timing, FPS and frame age of a video pipeline, and NVTX ranges per stage.

Samples are kept in fixed-size windows (the last :data:`WINDOW` values per stage), so a run of any
length uses constant memory; counts and totals cover the whole run. :class:`PipelineReport` is the
end-of-run (or on-demand) summary, a :class:`~fornet.records.Record` (``fornet run --json FILE``).

Per source the counts add up: every frame read was segmented and written, dropped (a live input's
newer frame replaced it) or discarded (read but never written: read ahead or in flight when the run
stopped at SIGINT/SIGTERM, ``--max-frames`` or ``--duration-s``). Reconnections are one per gap.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fornet.records import Record
from fornet.runtime.video.frames import FrameResult

if TYPE_CHECKING:
    from fornet.runtime.video.sources import VideoSource

#: Stages, in pipeline order.
STAGES = ("decode", "pre", "infer", "post", "render", "encode")
#: Samples kept per stage.
WINDOW = 2048


@functools.cache
def _nvtx() -> object | None:
    try:
        import nvtx
    except ImportError:
        return None
    return nvtx


def stage_range(name: str) -> contextlib.AbstractContextManager[object]:
    """An NVTX range named ``fornet.<name>`` when the ``nvtx`` package is installed (Nsight timelines)."""
    nvtx = _nvtx()
    if nvtx is None:
        return contextlib.nullcontext()
    return nvtx.annotate(f"fornet.{name}", domain="fornet")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Summary:
    """Milliseconds over the sample window: median, 90th and 99th percentile, mean, and the sample count
    (``p99_ms`` is ``None`` in reports written before it was recorded)."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    count: int
    p99_ms: float | None = None

    @classmethod
    def of(cls, seconds: Sequence[float], count: int) -> Summary:
        if not seconds:
            return cls(0.0, 0.0, 0.0, count, 0.0)
        values = np.asarray(seconds) * 1000
        return cls(float(np.median(values)), float(np.percentile(values, 90)), float(values.mean()), count,
                   float(np.percentile(values, 99)))


@dataclass(frozen=True)
class GapRecord:
    """One gap of a live source: its length and what caused it."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class SourceSummary:
    """What one source did: frames read = segmented + dropped + discarded (see the module docstring),
    reconnections (one per gap) and gaps, and the error or warning that ended it early."""

    name: str
    live: bool
    backend: str
    frames_read: int
    frames_processed: int
    dropped: int
    discarded: int
    reconnects: int
    gaps: tuple[GapRecord, ...]
    error: str | None
    warning: str | None


@dataclass(frozen=True)
class RunInfo:
    """What made a run's results: the model file, backend and device, the command and library versions."""

    model: str
    backend: str
    device: str
    command: str
    versions: dict[str, str | None]


@dataclass(frozen=True)
class PipelineReport(Record):
    """Timing summary of a pipeline run (see the module docstring); ``run``: what made it (``fornet run``
    fills it in)."""

    FORMAT: ClassVar[str] = "fornet-deploy/video-report"
    VERSION: ClassVar[int] = 2
    DESCRIPTION: ClassVar[str] = "fornet-deploy video pipeline report"
    FIX: ClassVar[str] = "run fornet run again with --json FILE"

    frames: int
    seconds: float
    fps: float
    batches: int
    mean_batch: float
    stages: dict[str, Summary]
    age: Summary
    sources: tuple[SourceSummary, ...]
    #: The H.264 encoder each video or RTSP output ran with (``x264`` or ``nvenc``), by output.
    encoders: dict[str, str] = field(default_factory=dict)
    run: RunInfo | None = None
    #: What timed ``pre``, ``infer`` and ``post``: ``cuda-events`` (GPU time on the stream, the CUDA
    #: pre/post kernels) or ``wall`` (host time, CPU pre/post).
    stage_clock: str = "wall"

    @classmethod
    def upgrade(cls, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """Version 1 had no ``run`` and no ``discarded`` or ``warning`` per source (the rest of the
        frames read was discarded)."""
        if version != 1:
            return None
        sources = [{**source, "warning": None,
                    "discarded": source["frames_read"] - source["frames_processed"] - source["dropped"]}
                   for source in body.get("sources", [])]
        return {**body, "sources": sources, "run": None}

    def format(self) -> str:
        """A text table for the terminal."""
        lines = []
        if self.run is not None:
            lines.append(f"model {self.run.model} [{self.run.backend}, {self.run.device}]")
        lines += [f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.1f} FPS "
                  f"({self.batches} engine calls, mean batch {self.mean_batch:.2f})",
                  f"{'stage':<8} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8}   (pre/infer/post: "
                  f"{'GPU time, CUDA events' if self.stage_clock == 'cuda-events' else 'wall time'})"]
        for name, s in [*self.stages.items(), ("age", self.age)]:
            lines.append(f"{name:<8} {s.median_ms:>10.2f} {s.p90_ms:>8.2f} {s.mean_ms:>8.2f}")
        lines += [f"{output}: encoder {encoder}" for output, encoder in self.encoders.items()]
        for source in self.sources:
            gaps = ", ".join(f"{g.seconds:.1f} s ({g.reason})" for g in source.gaps) or "none"
            lines.append(f"{source.name} [{source.backend}]: read {source.frames_read} = segmented "
                         f"{source.frames_processed} + dropped {source.dropped} + discarded {source.discarded} "
                         f"(read, never written), reconnects {source.reconnects}, gaps: {gaps}"
                         + (f", error: {source.error}" if source.error else "")
                         + (f", warning: {source.warning}" if source.warning else ""))
        return "\n".join(lines)


class PipelineStats:
    """Thread-safe accumulator of per-frame results (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages = {name: collections.deque[float](maxlen=WINDOW) for name in STAGES}
        self._age = collections.deque[float](maxlen=WINDOW)
        self._per_source: collections.Counter[int] = collections.Counter()
        self.frames = 0
        self.batches = 0
        self._batched_frames = 0
        self._start = time.monotonic()

    def restart_clock(self) -> None:
        """Start the FPS clock now (when the pipeline starts)."""
        self._start = time.monotonic()

    def add_batch(self, size: int) -> None:
        """One engine call on ``size`` frames."""
        with self._lock:
            self.batches += 1
            self._batched_frames += size

    def add(self, result: FrameResult) -> None:
        """A finished frame."""
        with self._lock:
            self.frames += 1
            self._per_source[result.frame.source_id] += 1
            for name, seconds in result.times.items():
                self._stages[name].append(seconds)
            self._age.append(result.age_s)

    def fps(self) -> float:
        """Frames per second since the clock started (cheap: for a progress line on every frame)."""
        return self.frames / max(time.monotonic() - self._start, 1e-9)

    def report(self, sources: Sequence[VideoSource], stage_clock: str = "wall") -> PipelineReport:
        """The summary so far; ``stage_clock`` says what timed pre/infer/post (:attr:`PipelineReport.stage_clock`)."""
        with self._lock:
            elapsed = max(time.monotonic() - self._start, 1e-9)
            stages = {name: Summary.of(list(values), len(values)) for name, values in self._stages.items()}
            summaries = tuple(
                SourceSummary(s.name, s.live, s.backend, s.frames_read, self._per_source[s.source_id], s.dropped,
                              s.frames_read - self._per_source[s.source_id] - s.dropped, s.reconnects,
                              tuple(GapRecord(round(g.seconds, 3), g.reason) for g in s.gaps),
                              None if s.error is None else str(s.error), s.warning)
                for s in sources)
            return PipelineReport(self.frames, round(elapsed, 3), self.frames / elapsed, self.batches,
                                  self._batched_frames / max(self.batches, 1), stages,
                                  Summary.of(list(self._age), len(self._age)), summaries, stage_clock=stage_clock)


@contextlib.contextmanager
def timed(times: dict[str, float], stage: str) -> Iterator[None]:
    """Add the seconds of the ``with`` block to ``times[stage]`` (inside an NVTX range)."""
    start = time.perf_counter()
    with stage_range(stage):
        yield
    times[stage] = times.get(stage, 0.0) + time.perf_counter() - start
