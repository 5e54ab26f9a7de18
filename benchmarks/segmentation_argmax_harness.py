"""nvinfer's segmentation parser on the GPU (the DeepStream package's CUDA kernel) against its NumPy form.

Compiles ``export/deepstream/segmentation_argmax.cu`` (the source ``fornet export --deepstream`` ships)
with nvcc into a shared library, calls its launcher ``fornet_segmentation_argmax`` through ctypes on
PyTorch-allocated device memory, and checks the class maps exactly against
``fornet.export.deepstream.parser.parse_segmentation`` (nvinfer's loop: threshold, first maximum,
-1 class) for 19 classes at 512x1024 and 1024x2048, batch 1 and 2, FP32 and FP16 scores in both
layouts, with ties, scores below -1 and NaN. In the same run it times, per case, the GPU path
(kernel + int32 labels to the host, CUDA events) next to nvinfer's CPU path (scores to pinned host
memory, then the NumPy parser, ``perf_counter``). PyTorch with CUDA is the only dependency.

    python benchmarks/segmentation_argmax_harness.py --out build/segmentation-argmax

Writes ``results.json`` and ``results.md`` to ``--out``, prints a summary, exits 1 on any mismatch
(2 when no GPU / nvcc is available).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fornet.cli.command import friendly_errors
from fornet.errors import FornetError
from fornet.export.deepstream.parser import parse_segmentation
from fornet.options import parse_hw
from fornet.runtime.bench.timing import cuda_event_times
from fornet.runtime.cuda.harness import harness_machine, write_harness_results

KERNEL_SOURCE = Path(__file__).resolve().parent.parent / "export" / "deepstream" / "segmentation_argmax.cu"
CLASSES = 19
SCORE_KINDS = ("probabilities", "awkward")
_DTYPES = {"fp32": (np.float32, 0), "fp16": (np.float16, 1)}
#: nvinfer's default segmentation-threshold in the package's scores config.
THRESHOLD = 0.0


@dataclass(frozen=True)
class CaseResult:
    """One (size, batch, dtype, layout, scores) case."""

    size: tuple[int, int]
    batch: int
    dtype: str
    order: int
    scores: str
    exact: bool
    mismatches: int
    gpu_ms_median: float
    gpu_ms_p90: float
    cpu_ms_median: float
    cpu_ms_p90: float


def compile_library(nvcc: Path, arch: str, out_dir: Path) -> Path:
    """``nvcc -shared`` the kernel source for ``sm_<arch>``; return the library path."""
    library = out_dir / f"libfornet_segmentation_argmax_sm{arch}.so"
    command = [str(nvcc), "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", f"-arch=sm_{arch}",
               str(KERNEL_SOURCE), "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FornetError(f"nvcc failed ({' '.join(command)}):\n{result.stderr.strip()}\nfix the CUDA toolkit setup")
    return library


def load_launcher(library: Path) -> Any:
    """The ctypes binding of ``fornet_segmentation_argmax`` in ``library``."""
    launch = ctypes.CDLL(str(library)).fornet_segmentation_argmax
    launch.restype = ctypes.c_int
    launch.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p]
    return launch


def make_scores(kind: str, batch: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """``B x C x H x W`` float32: softmax probabilities (what the package's graph emits), or logits with ties,
    pixels whose every score is below -1, and NaN."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (batch, CLASSES, *size)).astype(np.float32)
    if kind == "probabilities":
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)
    logits[:, :, ::5, :] = np.round(logits[:, :, ::5, :])  # ties
    logits[:, :, 1::7, :] -= 10.0  # every score below -1
    logits[:, 3, ::11, ::3] = np.nan
    return logits


def run_case(launch: Any, *, size: tuple[int, int], batch: int, dtype: str, order: int, kind: str, iters: int,
             warmup: int, seed: int) -> CaseResult:
    """Check one case against the NumPy parser and time the GPU and CPU paths."""
    import torch

    numpy_type, dtype_code = _DTYPES[dtype]
    scores = make_scores(kind, batch, size, seed).astype(numpy_type)
    layout = scores if order == 0 else np.ascontiguousarray(scores.transpose(0, 2, 3, 1))
    expected = np.stack([parse_segmentation(frame, THRESHOLD, order) for frame in layout])
    device_scores = torch.from_numpy(layout).cuda()
    labels = torch.empty((batch, *size), dtype=torch.int32, device="cuda")
    host_labels = torch.empty_like(labels, device="cpu").pin_memory()
    host_scores = torch.empty_like(device_scores, device="cpu").pin_memory()
    stream = torch.cuda.current_stream()

    def gpu_path() -> None:
        status = launch(device_scores.data_ptr(), dtype_code, batch, CLASSES, size[0], size[1], order, THRESHOLD,
                        labels.data_ptr(), stream.cuda_stream)
        if status != 0:
            raise FornetError(f"fornet_segmentation_argmax returned CUDA error {status}")
        host_labels.copy_(labels, non_blocking=True)

    gpu_path()
    torch.cuda.synchronize()
    got = host_labels.numpy()
    gpu_ms = cuda_event_times(gpu_path, iters, warmup)

    def cpu_path() -> None:
        host_scores.copy_(device_scores)
        for frame in host_scores.numpy():
            parse_segmentation(frame, THRESHOLD, order)

    cpu_ms = _time_cpu(cpu_path, max(3, iters // 10))
    return CaseResult(size=size, batch=batch, dtype=dtype, order=order, scores=kind,
                      exact=bool(np.array_equal(got, expected)), mismatches=int(np.count_nonzero(got != expected)),
                      gpu_ms_median=statistics.median(gpu_ms), gpu_ms_p90=_p90(gpu_ms),
                      cpu_ms_median=statistics.median(cpu_ms), cpu_ms_p90=_p90(cpu_ms))



def _time_cpu(fn: Any, iters: int) -> list[float]:
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def to_markdown(results: list[CaseResult], environment: dict[str, str]) -> str:
    """The results table (median and p90 per case)."""
    lines = [
        "# nvinfer's segmentation parser: CUDA kernel vs NumPy form",
        "",
        *(f"- {key}: {value}" for key, value in environment.items()),
        f"- {CLASSES} classes, threshold {THRESHOLD}; GPU path: kernel + int32 labels to pinned host memory (CUDA "
        "events); CPU path (nvinfer network-type=2): scores to pinned host memory + NumPy parser (perf_counter)",
        "",
        "| size | batch | dtype | order | scores | exact | GPU ms (median / p90) | CPU ms (median / p90) | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        speedup = r.cpu_ms_median / r.gpu_ms_median if r.gpu_ms_median > 0 else float("nan")
        lines.append(f"| {r.size[0]}x{r.size[1]} | {r.batch} | {r.dtype} | {r.order} | {r.scores} | "
                     f"{'yes' if r.exact else f'NO ({r.mismatches} pixels)'} | "
                     f"{r.gpu_ms_median:.3f} / {r.gpu_ms_p90:.3f} | {r.cpu_ms_median:.1f} / {r.cpu_ms_p90:.1f} | "
                     f"{speedup:.0f}x |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The harness's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where results.json/.md go")
    parser.add_argument("--sizes", default="512x1024,1024x2048", help="comma-separated HxW (default: 512x1024,"
                                                                      "1024x2048)")
    parser.add_argument("--batches", default="1,2", help="comma-separated batch sizes (default: 1,2)")
    parser.add_argument("--iters", type=int, default=30, help="timed GPU iterations per case (default: 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default: 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nvcc", type=Path, help="nvcc to use (default: $CUDACXX, PATH, /usr/local/cuda/bin)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Run every case; 0 when all are exact, 1 otherwise."""
    args = build_parser().parse_args(argv)
    sizes = [parse_hw(size) for size in args.sizes.split(",") if size.strip()]
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    machine = harness_machine(args.nvcc)
    cases = [(size, batch, dtype, order, kind) for size in sizes for batch in batches for dtype in _DTYPES
             for order in (0, 1) for kind in SCORE_KINDS]
    with tempfile.TemporaryDirectory() as build:
        launch = load_launcher(compile_library(machine.nvcc, machine.device.sm, Path(build)))
        results = [run_case(launch, size=size, batch=batch, dtype=dtype, order=order, kind=kind, iters=args.iters,
                            warmup=args.warmup, seed=args.seed + index)
                   for index, (size, batch, dtype, order, kind) in enumerate(cases)]
    return write_harness_results(args.out, machine, [asdict(r) for r in results], [r.exact for r in results],
                                 to_markdown(results, machine.environment))


if __name__ == "__main__":
    sys.exit(main())
