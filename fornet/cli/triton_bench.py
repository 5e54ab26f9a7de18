"""``fornet bench --triton URL``: the served model under concurrent load, checked against the local model.

The options and the run that :mod:`fornet.cli.bench` adds: the ``--engine`` file is opened locally as
the reference; the same frames go to the server from 1, 4, 8 (``--concurrency``) clients.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlparse

import numpy as np

from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.bench import run_served_benchmark


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, e.g. 1,4,8; got {text!r}")
    return values


def add_triton_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--triton`` option group."""
    group = parser.add_argument_group(
        "served model (Triton)", "with --triton, load the server at each --concurrency and check every answer "
        "against the --engine file run locally on the same frames (of --frame-size)")
    group.add_argument("--triton", metavar="URL", help="the server: http://HOST:8000 or grpc://HOST:8001")
    group.add_argument("--concurrency", type=_counts, default=[1, 4, 8], metavar="N,N,...",
                       help="concurrent clients per run (default: 1,4,8)")
    group.add_argument("--requests", type=int, default=50, metavar="N", help="requests per client (default: 50)")
    group.add_argument("--metrics-url", metavar="URL",
                       help="Triton's metrics, for the batches formed (default: http://HOST:8002/metrics)")


def run_triton_bench(args: argparse.Namespace) -> int:
    """Run the served benchmark; exit status 1 when an answer was wrong or lost."""
    if args.requests < 1:
        raise FornetRuntimeError(f"--requests must be at least 1, got {args.requests}")
    host = urlparse(args.triton if "://" in args.triton else f"http://{args.triton}").hostname
    metrics = args.metrics_url or f"http://{host}:8002/metrics"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*args.frame_size, 3), dtype=np.uint8) for _ in range(16)]
    with Segmenter(args.engine, args.backend, args.device, sidecar=args.sidecar, plugin=args.plugin,
                   threads=args.threads) as segmenter:
        result = run_served_benchmark(args.triton, segmenter, frames, concurrencies=args.concurrency,
                                      requests=args.requests, metrics_url=metrics)
    print(result.markdown())
    for load in result.served:
        for message in load.messages:
            print(f"concurrency {load.concurrency}: {message}")
    if not result.all_checked:
        print("error: some served answers differed from the local labels or were lost (see above)")
        return 1
    return 0
