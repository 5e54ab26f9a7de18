"""Concurrent load on a served model, like Triton's perf_analyzer, with every answer checked.

``concurrency`` client threads each send ``requests`` frames one after the other (closed loop)
and compare each answer with the labels expected for that very frame, so an answer lost, mixed
up between clients or wrong shows up as such; a request the server refuses (full queue, bad
input) is counted as refused with its message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fornet.runtime.serving.client import SegmentationClient
from fornet.runtime.serving.contract import MODEL_NAME
from fornet.runtime.serving.errors import RequestRejected, ServingError
from fornet.runtime.serving.metrics import BatchingStats, read_batching_stats

#: Latency percentiles reported (perf_analyzer's).
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one load run.

    Attributes:
        concurrency: client threads.
        sent: requests sent.
        answered: answers whose labels equal the expected ones.
        mismatched: answers with other labels (or another shape) than expected.
        refused: requests the server answered with an error.
        failed: requests with no answer at all (connection lost, timeout).
        messages: the distinct error messages, at most five.
        latencies_s: seconds per answered request.
        wall_s: seconds from the first request to the last answer.
        batching: what Triton's metrics say about the batches formed (None without a metrics URL).
    """

    concurrency: int
    sent: int
    answered: int
    mismatched: int
    refused: int
    failed: int
    messages: tuple[str, ...]
    latencies_s: tuple[float, ...]
    wall_s: float
    batching: BatchingStats | None = None

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return self.answered / self.wall_s if self.wall_s > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        """A latency percentile in milliseconds (NaN when nothing was answered)."""
        return float(np.percentile(self.latencies_s, percentile) * 1e3) if self.latencies_s else float("nan")

    def summary(self) -> str:
        """One line, e.g. ``concurrency 4: 210.3 req/s, p50 18.2 ms ... avg batch 3.1``."""
        latency = ", ".join(f"p{p} {self.latency_ms(p):.1f} ms" for p in PERCENTILES)
        batch = "" if self.batching is None else f", avg batch {self.batching.average_batch:.2f}"
        return (f"concurrency {self.concurrency}: {self.throughput:.1f} req/s, {latency}{batch}; "
                f"{self.answered}/{self.sent} answered and checked, {self.mismatched} mismatched, "
                f"{self.refused} refused, {self.failed} failed")


@dataclass
class _Tally:
    latencies: list[float]
    mismatched: int = 0
    refused: int = 0
    failed: int = 0


def _client_loop(url: str, model: str, frames: Sequence[np.ndarray], expected: Sequence[np.ndarray],
                 indices: Sequence[int], start: threading.Barrier, tally: _Tally, messages: set[str]) -> None:
    with SegmentationClient(url, model) as client:
        start.wait()
        for index in indices:
            began = time.perf_counter()
            try:
                labels = client.segment(frames[index])
            except RequestRejected as exc:
                tally.refused += 1
                messages.add(str(exc)[:300])
                continue
            except ServingError as exc:
                tally.failed += 1
                messages.add(str(exc)[:300])
                continue
            if labels.shape == expected[index].shape and np.array_equal(labels, expected[index]):
                tally.latencies.append(time.perf_counter() - began)
            else:
                tally.mismatched += 1


def run_load(url: str, frames: Sequence[np.ndarray], expected: Sequence[np.ndarray], *, concurrency: int,
             requests: int, model: str = MODEL_NAME, metrics_url: str | None = None) -> LoadResult:
    """Send ``requests`` frames from each of ``concurrency`` clients; check each answer against ``expected``.

    Client ``c`` sends frames ``c, c + 1, ...`` (cyclically), so concurrent clients send different frames
    and each checks the answer to its own.
    """
    if not frames or len(frames) != len(expected):
        raise ServingError("run_load needs frames and their expected labels, as many of each")
    if concurrency < 1 or requests < 1:
        raise ServingError(f"concurrency and requests must be at least 1, got {concurrency} and {requests}")
    before = read_batching_stats(metrics_url, model) if metrics_url else None
    start = threading.Barrier(concurrency + 1, timeout=60)
    tallies = [_Tally([]) for _ in range(concurrency)]
    messages: set[str] = set()
    threads = [threading.Thread(target=_client_loop, name=f"fornet-load-{c}", daemon=True, args=(
        url, model, frames, expected, [(c + k) % len(frames) for k in range(requests)], start, tallies[c], messages))
        for c in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    batching = read_batching_stats(metrics_url, model).since(before) if metrics_url and before else None
    latencies = tuple(t for tally in tallies for t in tally.latencies)
    return LoadResult(
        concurrency=concurrency, sent=concurrency * requests, answered=len(latencies),
        mismatched=sum(t.mismatched for t in tallies), refused=sum(t.refused for t in tallies),
        failed=sum(t.failed for t in tallies), messages=tuple(sorted(messages))[:5], latencies_s=latencies,
        wall_s=wall, batching=batching,
    )
