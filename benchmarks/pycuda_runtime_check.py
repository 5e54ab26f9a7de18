"""The TensorRT runtime's pycuda paths, exercised for real on a GPU without TensorRT.

Runs what :class:`fornet.runtime.tensorrt.backend.TensorRTBackend` and the GPU pipeline do around
TensorRT, with pycuda on the GPU's primary context:

* ``context``: enter and leave :class:`~fornet.runtime.cuda.context.CudaContext` (nested, and
  from a second thread), then ``close()``: pycuda's context stack ends empty;
* ``copies``: pinned host buffers, device buffers and one stream, host -> device -> host
  asynchronous copies, bit-exact;
* ``cuda_graph``: :class:`~fornet.runtime.cuda.graph.CudaGraph` captures a kernel launch after
  one plain execution and a synchronise, and replays it;
* ``release_order``: the rule the runtime is built on, on real pycuda: releasing the primary
  context inside ``with`` and popping afterwards raises "cannot pop non-current context".

The pre/post kernels (through :class:`~fornet.runtime.cuda.prepost.GpuPrePost`, including its
``free()``) are checked by ``prepost_kernel_harness.py``.

    python benchmarks/pycuda_runtime_check.py --out build/pycuda-check

Writes ``results.json`` and ``results.md``; exits 1 when a check fails, 2 when pycuda or a GPU is
missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.runtime.cuda.context import CudaContext

_FILL_KERNEL = """
extern "C" __global__ void fornet_fill(float* out, float value, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = value + i;
}
"""


def check_context(device: int) -> str:
    """Nested and cross-thread use of the primary context, then close(): the stack ends empty."""
    context = CudaContext(device)
    driver = context.driver
    with context, context:
        allocation = driver.mem_alloc(1024)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with context:
                driver.mem_alloc(256).free()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    context.close(allocation.free)
    if driver.Context.get_current() is not None:
        raise AssertionError("a context is still current after close()")
    return f"{context.name}, compute capability {context.compute_capability}"


def check_copies(device: int) -> str:
    """Pinned host -> device -> pinned host on one stream, bit-exact."""
    context = CudaContext(device)
    driver = context.driver
    source = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)

    def run() -> None:
        stream = driver.Stream()
        host_in = driver.pagelocked_empty(source.size, np.float32)
        host_out = driver.pagelocked_empty(source.size, np.float32)
        buffer = driver.mem_alloc(source.nbytes)
        np.copyto(host_in, source)
        driver.memcpy_htod_async(buffer, host_in, stream)
        driver.memcpy_dtoh_async(host_out, buffer, stream)
        stream.synchronize()
        buffer.free()
        if not np.array_equal(host_out, source):
            raise AssertionError("the round trip changed the data")

    context.close(run)
    return f"{source.nbytes >> 20} MiB round trip exact"


def check_cuda_graph(device: int) -> str:
    """Capture one kernel launch after a plain execution and a synchronise; replay it."""
    import importlib

    from fornet.runtime.cuda.graph import CudaGraph

    context = CudaContext(device)
    driver = context.driver
    result: dict[str, Any] = {}

    def run() -> None:
        compiler = importlib.import_module("pycuda.compiler")
        fill = compiler.SourceModule(_FILL_KERNEL, no_extern_c=True).get_function("fornet_fill")
        n = 4096
        stream = driver.Stream()
        buffer = driver.mem_alloc(n * 4)

        def enqueue() -> None:
            fill(buffer, np.float32(1.5), np.int32(n), block=(256, 1, 1), grid=(n // 256, 1), stream=stream)

        enqueue()  # one plain execution, then synchronise before capture (as the backend does)
        stream.synchronize()
        driver.memset_d32(buffer, 0, n)
        graph = CudaGraph(int(stream.handle), enqueue)
        graph.launch()
        host = driver.pagelocked_empty(n, np.float32)
        driver.memcpy_dtoh_async(host, buffer, stream)
        stream.synchronize()
        graph.destroy()
        buffer.free()
        result["ok"] = bool(np.array_equal(host, 1.5 + np.arange(n, dtype=np.float32)))

    context.close(run)
    if not result.get("ok"):
        raise AssertionError("the replayed graph did not write the expected values")
    return "captured and replayed one kernel launch"


def check_release_order(device: int) -> str:
    """pycuda's rule: release inside ``with`` and the block's pop raises (run last: it leaves a stale entry)."""
    context = CudaContext(device)
    driver = context.driver
    try:
        with context:
            context._context.detach()  # the order the runtime used before; never do this
    except driver.LogicError as exc:
        return f"confirmed: {exc}"
    raise AssertionError("pycuda accepted a pop after releasing the primary context; the runtime's rule needs review")


CHECKS: dict[str, Callable[[int], str]] = {
    "context": check_context, "copies": check_copies, "cuda_graph": check_cuda_graph,
    "release_order": check_release_order,
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where results.json/.md go")
    parser.add_argument("--device", type=int, default=0, help="CUDA device (default: 0)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Run every check; 0 when all pass, 1 otherwise."""
    args = build_parser().parse_args(argv)
    out = ensure_writable_dir(args.out)
    from fornet.runtime.cuda.context import require_pycuda

    require_pycuda()
    results = []
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            results.append({"check": name, "ok": True, "detail": check(args.device)})
        except Exception as exc:  # every check is reported, the run goes on
            results.append({"check": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()})
        results[-1]["seconds"] = round(time.perf_counter() - start, 3)
    write_text_atomic(out / "results.json", json.dumps({"checks": results}, indent=2) + "\n")
    lines = ["| check | ok | detail | s |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['check']} | {'yes' if r['ok'] else 'NO'} | {r['detail']} | {r['seconds']} |" for r in results]
    markdown = "\n".join(["# pycuda runtime paths", "", *lines, ""])
    write_text_atomic(out / "results.md", markdown)
    print(markdown)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
