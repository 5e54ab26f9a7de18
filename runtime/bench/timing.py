"""Latency measurement in the manner of trtexec, with candidates interleaved for fair comparisons.

Each candidate is a callable that does one complete, synchronous unit of work (it returns when the
result is ready). :func:`measure` warms every candidate up for ``warmup_s``, then runs them in
alternating order (A B, B A, A B, ...) until each has at least ``min_iters`` samples and
``duration_s`` of measured time, so background load and clock changes hit all candidates alike.
The clock is the host's ``perf_counter`` around each call.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tqdm import tqdm

from fornet.options import OptionGroup, option, seconds_arg
from fornet.runtime.errors import FornetRuntimeError

#: Coefficient of variation above which a measurement is flagged as noisy.
DEFAULT_CV_WARNING = 0.05
TIMING = OptionGroup("timing (per scope, trtexec's defaults)")


class TimingError(FornetRuntimeError):
    """Timing settings that cannot work."""


@dataclass(frozen=True)
class TimingSettings:
    """trtexec's defaults: 0.2 s warm-up, then at least 10 iterations and 3 s per candidate."""

    warmup_s: float = option(0.2, flag="--warmup-s", parse=seconds_arg, metavar="S", group=TIMING,
                             help="warm-up time per candidate")
    min_iters: int = option(10, flag="--min-iters", parse=int, metavar="N", group=TIMING,
                            help="at least N timed calls per candidate")
    duration_s: float = option(3.0, flag="--duration-s", parse=seconds_arg, metavar="S", group=TIMING,
                               help="at least S seconds of timed calls per candidate")

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.duration_s < 0:
            raise TimingError(f"warm-up and duration must be >= 0 s, got {self.warmup_s} and {self.duration_s}")
        if self.min_iters < 1:
            raise TimingError(f"min_iters must be at least 1, got {self.min_iters}")

    def describe(self) -> str:
        """E.g. ``warm-up 0.2 s, then >= 10 iterations and >= 3.0 s per candidate``."""
        return (f"warm-up {self.warmup_s:g} s, then >= {self.min_iters} iterations and >= {self.duration_s:g} s "
                "per candidate")


@dataclass(frozen=True, kw_only=True)
class TimingRecord(TimingSettings):
    """The settings as a benchmark record keeps them, with :meth:`TimingSettings.describe`'s words."""

    description: str


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (``fraction`` in (0, 1])."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class LatencySummary:
    """One candidate's latencies (ms) as a benchmark record keeps them, with the raw samples."""

    iterations: int
    batch: int
    throughput_img_s: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    mean_ms: float
    cv: float
    samples_ms: tuple[float, ...]


@dataclass(frozen=True)
class LatencyStats:
    """Latencies (ms) of one candidate; ``batch`` images per call."""

    samples_ms: tuple[float, ...]
    batch: int = 1

    @property
    def median(self) -> float:
        """Median latency, ms."""
        return statistics.median(self.samples_ms)

    @property
    def mean(self) -> float:
        """Mean latency, ms."""
        return statistics.fmean(self.samples_ms)

    @property
    def cv(self) -> float:
        """Coefficient of variation (standard deviation / mean); 0 for a single sample."""
        if len(self.samples_ms) < 2 or self.mean == 0:
            return 0.0
        return statistics.stdev(self.samples_ms) / self.mean

    @property
    def throughput(self) -> float:
        """Images per second over the measured calls."""
        total = sum(self.samples_ms) / 1000
        return self.batch * len(self.samples_ms) / total if total > 0 else math.inf

    def to_record(self) -> LatencySummary:
        """The summary a benchmark record keeps, with the raw samples."""
        ordered = sorted(self.samples_ms)
        return LatencySummary(
            iterations=len(ordered), batch=self.batch, throughput_img_s=self.throughput, median_ms=self.median,
            p90_ms=percentile(ordered, 0.9), p99_ms=percentile(ordered, 0.99), max_ms=ordered[-1],
            min_ms=ordered[0], mean_ms=self.mean, cv=self.cv, samples_ms=self.samples_ms,
        )


#: What to do about a noisy measurement (printed once after the warnings).
SPREAD_ADVICE = ("the machine may be busy or throttling: close other work, fix the clocks (Jetson: sudo nvpmodel -m 0 "
                 "&& sudo jetson_clocks) or measure longer (--duration-s)")


def spread_warning(label: str, stats: LatencyStats, threshold: float = DEFAULT_CV_WARNING) -> str | None:
    """A warning when the coefficient of variation exceeds ``threshold`` (see :data:`SPREAD_ADVICE`)."""
    if stats.cv <= threshold:
        return None
    return f"{label}: latency varies a lot (coefficient of variation {100 * stats.cv:.1f}% > {100 * threshold:g}%)"


def measure(candidates: Mapping[str, Callable[[], object]], settings: TimingSettings, batch: int = 1,
            progress: bool = False, desc: str = "timing") -> dict[str, LatencyStats]:
    """Warm up, then time ``candidates`` interleaved (see the module docstring)."""
    names = list(candidates)
    with tqdm(total=len(names), desc=f"{desc}: warm-up", unit="model", disable=not progress, leave=False) as bar:
        for name in names:
            start = time.perf_counter()
            candidates[name]()
            while time.perf_counter() - start < settings.warmup_s:
                candidates[name]()
            bar.update()
    samples: dict[str, list[float]] = {name: [] for name in names}
    spent = dict.fromkeys(names, 0.0)

    def done() -> bool:
        return all(len(samples[n]) >= settings.min_iters and spent[n] >= settings.duration_s for n in names)

    def needed() -> float:  # seconds until every candidate has its iterations and its duration
        return sum(max(settings.duration_s, settings.min_iters * spent[n] / max(1, len(samples[n]))) for n in names)

    with tqdm(total=round(settings.duration_s * len(names), 1), desc=desc, unit="s", disable=not progress, leave=False,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s") as bar:
        turn = 0
        while not done():
            for name in names if turn % 2 == 0 else reversed(names):
                start = time.perf_counter()
                candidates[name]()
                elapsed = time.perf_counter() - start
                samples[name].append(elapsed * 1000)
                spent[name] += elapsed
            turn += 1
            bar.total = max(needed(), sum(spent.values()))
            bar.update(sum(spent.values()) - bar.n)
    return {name: LatencyStats(tuple(samples[name]), batch) for name in names}


def cuda_event_times(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``iters`` calls of ``fn`` on the current CUDA stream, between two CUDA events
    (after ``warmup`` untimed calls): the GPU time of kernels ``fn`` launches, not the host's."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times
