"""Served vs local: throughput and latency of a Triton-served model at several concurrencies, next to the
local Segmenter on the same frames in the same run, every served answer checked against the local labels."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.load import PERCENTILES, LoadResult, run_load


@dataclass(frozen=True)
class ServedBenchmark:
    """One run: the local Segmenter's per-frame times and one load result per concurrency."""

    local_s: tuple[float, ...]
    served: tuple[LoadResult, ...]

    @property
    def local_throughput(self) -> float:
        """Frames per second of the local Segmenter, one frame per call (median time)."""
        return 1.0 / float(np.median(self.local_s))

    @property
    def all_checked(self) -> bool:
        """Every served answer had the local labels and none was lost."""
        return all(r.mismatched == 0 and r.failed == 0 for r in self.served)

    def markdown(self) -> str:
        """A table: concurrency, req/s, latency percentiles, average batch, answered/refused."""
        latency = " | ".join(f"p{p} ms" for p in PERCENTILES)
        head = [f"| run | req/s | {latency} | avg batch | answered / refused |",
                "|---|---|" + "---|" * len(PERCENTILES) + "---|---|"]
        local = np.asarray(self.local_s) * 1e3
        rows = [f"| local Segmenter | {self.local_throughput:.1f} | "
                + " | ".join(f"{np.percentile(local, p):.1f}" for p in PERCENTILES) + f" | 1 | {len(local)} / 0 |"]
        for r in self.served:
            batch = f"{r.batching.average_batch:.2f}" if r.batching else "?"
            rows.append(f"| served, concurrency {r.concurrency} | {r.throughput:.1f} | "
                        + " | ".join(f"{r.latency_ms(p):.1f}" for p in PERCENTILES)
                        + f" | {batch} | {r.answered} / {r.refused} |")
        return "\n".join(head + rows)


def run_served_benchmark(url: str, segmenter: Segmenter, frames: Sequence[np.ndarray], *,
                         concurrencies: Sequence[int], requests: int, metrics_url: str | None = None,
                         warmup: int = 2) -> ServedBenchmark:
    """Label ``frames`` locally (timed, after ``warmup`` calls), then load the server at each concurrency."""
    for frame in frames[:warmup]:
        segmenter(frame)
    expected, local_s = [], []
    for index in range(max(requests, len(frames))):
        began = time.perf_counter()
        labels = segmenter(frames[index % len(frames)])
        local_s.append(time.perf_counter() - began)
        if index < len(frames):
            expected.append(labels)
    run_load(url, frames, expected, concurrency=1, requests=warmup)
    served = tuple(run_load(url, frames, expected, concurrency=c, requests=requests, metrics_url=metrics_url)
                   for c in concurrencies)
    return ServedBenchmark(tuple(local_s), served)
