"""Served vs local: throughput and latency of a Triton-served model at several concurrencies, next to the
local Segmenter on the same frames in the same run, every served answer checked against the local labels."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from fornet.options import OptionGroup, format_hw, option, positive_int_arg
from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.contract import MODEL_NAME
from fornet.runtime.serving.load import PERCENTILES, LoadResult, run_load


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, e.g. 1,4,8; got {text!r}")
    return values


TRITON = OptionGroup("served model (Triton)", "with --triton-url, load the server at each --concurrency and check "
                     "every answer against the --model file run locally on the same frames (of --frame-size)")


@dataclass(frozen=True)
class TritonBenchOptions:
    """``fornet bench --triton-url URL``: the server, the loads and where its metrics are."""

    triton_url: str | None = option(None, flag="--triton-url", metavar="URL", group=TRITON,
                                    help="the Triton server serving the model: http://HOST:8000 or grpc://HOST:8001")
    concurrency: tuple[int, ...] = option((1, 4, 8), flag="--concurrency", parse=_counts, metavar="N,N,...",
                                          default_text="1,4,8", group=TRITON, help="concurrent clients per run")
    requests: int = option(50, flag="--requests", parse=positive_int_arg, metavar="N", group=TRITON,
                           help="requests per client")
    metrics_url: str | None = option(None, flag="--metrics-url", metavar="URL", group=TRITON,
                                     default_text="http://HOST:8002/metrics",
                                     help="Triton's metrics, for the batches formed")

    def resolved_metrics_url(self) -> str:
        """``--metrics-url``, else port 8002 on the server's host."""
        assert self.triton_url is not None
        url = self.triton_url if "://" in self.triton_url else f"http://{self.triton_url}"
        return self.metrics_url or f"http://{urlparse(url).hostname}:8002/metrics"


@dataclass(frozen=True)
class ServedBenchmark:
    """One run: the local Segmenter's per-frame times and one load result per concurrency.

    Attributes:
        local_s: seconds per frame of the local Segmenter.
        served: one load result per concurrency.
        model: the local reference model's file (the server says nothing of the file it serves).
        frame_size: ``(H, W)`` of the frames sent.
        url: the server.
        frames: how many distinct frames were sent (cyclically).
    """

    local_s: tuple[float, ...]
    served: tuple[LoadResult, ...]
    model: str = ""
    frame_size: tuple[int, int] = (0, 0)
    url: str = ""
    frames: int = 0

    @property
    def local_throughput(self) -> float:
        """Frames per second of the local Segmenter, one frame per call (median time)."""
        return 1.0 / float(np.median(self.local_s))

    @property
    def all_checked(self) -> bool:
        """Every served answer had the local labels and none was lost."""
        return all(r.mismatched == 0 and r.failed == 0 for r in self.served)

    def verdict(self) -> str:
        """Whether every served answer equalled the local labels, with the counts (refusals: a full queue)."""
        sent, equal = sum(r.sent for r in self.served), sum(r.answered for r in self.served)
        differed, lost = sum(r.mismatched for r in self.served), sum(r.failed for r in self.served)
        refused = sum(r.refused for r in self.served)
        refusals = f"; {refused} refused by the server (see below)" if refused else ""
        if self.all_checked:
            return f"every served answer ({equal} of {sent} requests) equalled the local labels{refusals}"
        return (f"NOT all served answers equalled the local labels: {equal} equal, {differed} differed, {lost} lost "
                f"of {sent} requests{refusals}; is the server serving {Path(self.model).name} "
                f"(`fornet serve {self.model}`)?")

    def summary(self) -> str:
        """What was served and whether every answer matched, then the table and the distinct errors."""
        frames = f"{self.frames} random" if self.frames else "random"
        lines = [f"served model '{MODEL_NAME}' at {self.url} vs {self.model} run locally, on {frames} "
                 f"{format_hw(self.frame_size)} BGR frames: {self.verdict()}", "", self.markdown()]
        lines += [f"concurrency {r.concurrency}: {message}" for r in self.served for message in r.messages]
        return "\n".join(lines)

    def markdown(self) -> str:
        """A table: concurrency, req/s, latency percentiles, average batch, and how the answers compared."""
        latency = " | ".join(f"p{p} ms" for p in PERCENTILES)
        head = [f"| run | req/s | {latency} | avg batch | equal / differed / refused / lost |",
                "|---|---|" + "---|" * len(PERCENTILES) + "---|---|"]
        local = np.asarray(self.local_s) * 1e3
        rows = [f"| local Segmenter | {self.local_throughput:.1f} | "
                + " | ".join(f"{np.percentile(local, p):.1f}" for p in PERCENTILES)
                + f" | 1 | {len(local)} / - / - / - |"]
        for r in self.served:
            batch = f"{r.batching.average_batch:.2f}" if r.batching else "?"
            rows.append(f"| served, concurrency {r.concurrency} | {r.throughput:.1f} | "
                        + " | ".join(f"{r.latency_ms(p):.1f}" for p in PERCENTILES)
                        + f" | {batch} | {r.answered} / {r.mismatched} / {r.refused} / {r.failed} |")
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
    return ServedBenchmark(tuple(local_s), served, str(segmenter.spec.path), tuple(frames[0].shape[:2]), url,
                           len(frames))


def bench_served_model(options: TritonBenchOptions, spec: ModelSpec, frame_size: tuple[int, int],
                       frames: int = 16) -> ServedBenchmark:
    """Open ``spec`` locally and load the server at ``options.triton_url`` with ``frames`` random frames."""
    assert options.triton_url is not None
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*frame_size, 3), dtype=np.uint8) for _ in range(frames)]
    with Segmenter(spec) as segmenter:
        return run_served_benchmark(options.triton_url, segmenter, images, concurrencies=list(options.concurrency),
                                    requests=options.requests, metrics_url=options.resolved_metrics_url())
