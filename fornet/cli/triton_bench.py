"""``fornet bench --triton URL``: the served model under concurrent load, checked against the local model.

The options and the run that :mod:`fornet.cli.bench` adds: the ``--engine`` file is opened locally as
the reference; the same frames go to the server from 1, 4, 8 (``--concurrency``) clients.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from fornet.options import OptionGroup, option
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.bench import run_served_benchmark


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, e.g. 1,4,8; got {text!r}")
    return values


TRITON = OptionGroup("served model (Triton)", "with --triton, load the server at each --concurrency and check every "
                     "answer against the --engine file run locally on the same frames (of --frame-size)")


@dataclass(frozen=True)
class TritonBenchOptions:
    """``fornet bench --triton URL``: the server, the loads and where its metrics are."""

    triton: str | None = option(None, flag="--triton", metavar="URL", group=TRITON,
                                help="the server: http://HOST:8000 or grpc://HOST:8001")
    concurrency: tuple[int, ...] = option((1, 4, 8), flag="--concurrency", parse=_counts, metavar="N,N,...",
                                          default_text="1,4,8", group=TRITON, help="concurrent clients per run")
    requests: int = option(50, flag="--requests", parse=int, metavar="N", group=TRITON,
                           help="requests per client")
    metrics_url: str | None = option(None, flag="--metrics-url", metavar="URL", group=TRITON,
                                     default_text="http://HOST:8002/metrics",
                                     help="Triton's metrics, for the batches formed")


def run_triton_bench(served: TritonBenchOptions, args: argparse.Namespace) -> int:
    """Run the served benchmark; exit status 1 when an answer was wrong or lost."""
    assert served.triton is not None
    if served.requests < 1:
        raise FornetRuntimeError(f"--requests must be at least 1, got {served.requests}")
    host = urlparse(served.triton if "://" in served.triton else f"http://{served.triton}").hostname
    metrics = served.metrics_url or f"http://{host}:8002/metrics"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*args.frame_size, 3), dtype=np.uint8) for _ in range(16)]
    with Segmenter(args.engine, args.backend, args.device, sidecar=args.sidecar, plugin=args.plugin,
                   threads=args.threads) as segmenter:
        result = run_served_benchmark(served.triton, segmenter, frames, concurrencies=list(served.concurrency),
                                      requests=served.requests, metrics_url=metrics)
    print(result.markdown())
    for load in result.served:
        for message in load.messages:
            print(f"concurrency {load.concurrency}: {message}")
    if not result.all_checked:
        print("error: some served answers differed from the local labels or were lost (see above)")
        return 1
    return 0
