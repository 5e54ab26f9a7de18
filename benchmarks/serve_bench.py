"""Served vs local throughput: Triton Inference Server (``fornet serve``) at concurrency 1/4/8 vs the local Segmenter.

A seeded ``lite`` checkpoint is exported once into ``--work`` (raw uint8 BGR input, labels output,
dynamic batch: what a server wants), a real server is started on free 127.0.0.1 ports from the server
environment (``make triton-env``), and each repeat times, in one run: the local Segmenter on the
frames one by one, then the served model at every concurrency (closed loop, every answer checked
against the local labels), with the average batch Triton formed (from its metrics). Writes a
Markdown report with the median and the spread (min..max) over the repeats.

    python benchmarks/serve_bench.py --work build/serve-bench --out benchmarks/serve_results.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.options import hw_arg
from fornet.runtime.serving.bench import ServedBenchmark, run_served_benchmark


def prepare_model(work: Path, input_size: tuple[int, int]) -> Path:
    """The raw-input, labels-output, dynamic-batch lite export in ``work`` (created once per size)."""
    from fornet.export import ExportOptions, IOFormat, export_onnx
    from fornet.model import build_model, save_checkpoint

    folder = ensure_writable_dir(work / f"lite-{input_size[0]}x{input_size[1]}")
    onnx_path = folder / "fornet.onnx"
    if not onnx_path.is_file():
        import torch

        torch.manual_seed(0)
        save_checkpoint(folder / "model.pth", build_model("lite").eval(), "lite")
        export_onnx(folder / "model.pth", folder, ExportOptions(
            input_size=input_size, dynamic_batch=True, batch=2, verify=False, progress=False,
            io=IOFormat(input="raw", channel_order="BGR", output="labels")))
    return onnx_path


def _spread(values: list[float]) -> str:
    return f"{np.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def report(runs: list[ServedBenchmark], command: str, input_size: tuple[int, int], threads: int, requests: int,
           load: tuple[float, float]) -> str:
    """The Markdown report: machine, command, median (min..max) per row, and the last run's full table."""
    import onnxruntime

    concurrencies = [load.concurrency for load in runs[0].served]
    rows = [f"| local Segmenter (1 frame per call) | {_spread([r.local_throughput for r in runs])} | - | - |"]
    for index, concurrency in enumerate(concurrencies):
        loads = [r.served[index] for r in runs]
        batches = [load.batching.average_batch for load in loads if load.batching]
        rows.append(f"| served, concurrency {concurrency} | {_spread([load.throughput for load in loads])} | "
                    f"{_spread([load.latency_ms(50) for load in loads])} | {_spread(batches) if batches else '?'} |")
    kernel = ".".join(platform.release().split(".")[:2])
    verdict = "all equal, none lost" if all(r.all_checked for r in runs) else "MISMATCHES, see below"
    return f"""# Served (Triton Inference Server) vs local Segmenter

Produced by `benchmarks/serve_bench.py`.

## Machine and set-up

- {platform.machine()}, {os.cpu_count()} CPU cores, no GPU; {platform.system()} {kernel}, Python
  {platform.python_version()} (client), onnxruntime {onnxruntime.__version__}; 1-minute load average {load[0]:.2f}
  at the start, {load[1]:.2f} at the end (the machine is shared).
- Server: `fornet serve` = tritonserver 2.51 from nvidia-pytriton 0.7.0 in `.venv-triton` (Debian's Python
  3.11.2), ONNX Runtime on the CPU with {threads} threads; dynamic batching up to 8, queue delay 2 ms, queue 64.
- Model: seeded `lite`, {input_size[0]}x{input_size[1]} uint8 BGR frames in, labels out (argmax in the graph).
- Work: {requests} requests per client, closed loop; the local Segmenter ({threads} threads) on the same
  frames in the same run. Clients, server and local model share the same cores.
- Every served answer was compared with the local labels: {verdict}.

Command: `{command}`

## Results: median (min..max) over {len(runs)} runs

| run | frames/s | p50 latency ms | average batch formed |
|---|---|---|---|
{chr(10).join(rows)}

## Last run in full

{runs[-1].markdown()}
"""


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("build/serve-bench"), help="model cache folder")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--input-size", type=hw_arg, default=(256, 512), metavar="HxW")
    parser.add_argument("--concurrency", default="1,4,8", help="client counts (default: 1,4,8)")
    parser.add_argument("--requests", type=int, default=50, help="requests per client (default: 50)")
    parser.add_argument("--repeats", type=int, default=3, help="runs for median and spread (default: 3)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads, server and local")
    args = parser.parse_args(argv)
    arguments = sys.argv[1:] if argv is None else argv
    from fornet.runtime.model_spec import ModelSpec
    from fornet.runtime.segmenter import Segmenter
    from fornet.runtime.serving.launcher import ServerProcess
    from fornet.runtime.serving.options import ServerOptions
    from fornet.runtime.serving.ports import free_port

    model = prepare_model(args.work, args.input_size)
    ports = sorted({free_port() for _ in range(6)})[:3]
    spec = ModelSpec(model, device="cpu", threads=args.threads)
    options = ServerOptions(model=spec, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*args.input_size, 3), dtype=np.uint8) for _ in range(16)]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    load_start = os.getloadavg()[0]
    with (ensure_writable_dir(args.work) / "server.log").open("w") as log, ServerProcess(options, log=log) as server, \
            Segmenter(spec) as local:
        server.wait_ready()
        runs = []
        for repeat in range(args.repeats):
            runs.append(run_served_benchmark(options.http_url, local, frames, concurrencies=concurrencies,
                                             requests=args.requests, metrics_url=options.metrics_url))
            print(f"run {repeat + 1}/{args.repeats}\n{runs[-1].markdown()}", flush=True)
    text = report(runs, shlex.join(["python", "benchmarks/serve_bench.py", *arguments]), args.input_size,
                  args.threads, args.requests, (load_start, os.getloadavg()[0]))
    if args.out is not None:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    return 0 if all(r.all_checked for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
