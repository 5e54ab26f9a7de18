"""Numerics and speed of the TopKGate CUDA kernel against the NumPy reference (needs a CUDA GPU).

Compiles ``plugins/topk_gate_kernel.cu`` (the plugin's own source) with nvcc into a small shared
library, calls its host launcher ``fornet_topk_gate_launch`` (the function the TensorRT plugin's
``enqueue`` calls) through ctypes on PyTorch-allocated device memory, and checks masks and gated
outputs bit for bit against ``fornet.export.topk_gate_reference`` at Cityscapes sizes (128x256
cells, k up to 13107), batch 1-4, float32 and float16 features, including ties, NaN and -0.0
scores. In the same run it times the kernel next to the PyTorch baseline (``topk`` + ``scatter`` +
multiply, as ``fornet.model.TopKGate`` does) with CUDA events. PyTorch with CUDA is the only
dependency: it provides the baseline, the device memory and the stream (no CuPy or pycuda).

    python benchmarks/gate_kernel_harness.py --out build/gate-harness

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fornet.cli.command import friendly_errors
from fornet.errors import FornetError
from fornet.options import parse_hw
from fornet.runtime.bench.timing import cuda_event_times
from fornet.runtime.cuda.harness import harness_machine, write_harness_results

KERNEL_SOURCE = Path(__file__).resolve().parent.parent / "plugins" / "topk_gate_kernel.cu"
REFERENCE_RATIOS = (0.1, 0.2, 0.3, 0.4)
SCORE_KINDS = ("normal", "ties", "special")
_FEATURE_TYPE = {"fp32": 0, "fp16": 1}


@dataclass(frozen=True)
class CaseResult:
    """One (batch, dtype, score kind) case."""

    batch: int
    dtype: str
    scores: str
    channels: int
    grid: tuple[int, int]
    ks: tuple[int, ...]
    masks_exact: bool
    gated_exact: bool
    mismatched_cells: int
    kernel_ms_median: float
    kernel_ms_p90: float
    torch_ms_median: float
    torch_ms_p90: float

    @property
    def exact(self) -> bool:
        """Masks and every gated output match the reference bit for bit."""
        return self.masks_exact and self.gated_exact


def compile_gate_library(nvcc: Path, arch: str, out_dir: Path) -> Path:
    """``nvcc -shared`` the kernel source for ``sm_<arch>``; return the library path."""
    library = out_dir / f"libfornet_gate_sm{arch}.so"
    command = [str(nvcc), "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", f"-arch=sm_{arch}",
               str(KERNEL_SOURCE), "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FornetError(f"nvcc failed ({' '.join(command)}):\n{result.stderr.strip()}\nfix the CUDA toolkit setup")
    return library


def load_launcher(library: Path) -> Any:
    """The ctypes binding of ``fornet_topk_gate_launch`` in ``library``."""
    lib = ctypes.CDLL(str(library))
    launch = lib.fornet_topk_gate_launch
    launch.restype = ctypes.c_int
    launch.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
        ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
        ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p,
    ]
    return launch


def make_scores(kind: str, batch: int, grid: tuple[int, int], seed: int) -> Any:
    """``B x 1 x h x w`` float32 scores: normal, heavily tied (one decimal), or with NaN/+-0/+-inf."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((batch, 1, *grid)).astype(np.float32)
    if kind == "ties":
        scores = np.round(scores, 1)
    elif kind == "special":
        flat = scores.reshape(batch, -1)
        flat[:, ::7] = np.nan
        flat[:, ::11] = -0.0
        flat[:, ::13] = 0.0
        flat[:, 5] = np.inf
        flat[:, 6] = -np.inf
    return scores


def run_case(launch: Any, *, batch: int, dtype: str, kind: str, channels: int, grid: tuple[int, int],
             iters: int, warmup: int, seed: int) -> CaseResult:
    """Check one case against the reference and time kernel and baseline."""
    import numpy as np
    import torch

    from fornet.export.topk_gate_reference import topk_gate_reference
    from fornet.model import TopKGate, topk_counts

    n = grid[0] * grid[1]
    ks = topk_counts(n, REFERENCE_RATIOS)
    scores_np = make_scores(kind, batch, grid, seed)
    np_dtype = np.float16 if dtype == "fp16" else np.float32
    features_np = np.random.default_rng(seed + 1).standard_normal((batch, channels, *grid)).astype(np_dtype)
    ref_gated, ref_masks = topk_gate_reference(features_np, scores_np, ks)

    device = torch.device("cuda")
    features = torch.from_numpy(features_np).to(device)
    scores = torch.from_numpy(scores_np).to(device)
    gated = [torch.empty_like(features) for _ in ks]
    masks = torch.empty((batch, len(ks), *grid), dtype=torch.float32, device=device)
    gated_ptrs = (ctypes.c_void_p * len(ks))(*(g.data_ptr() for g in gated))
    ks_array = (ctypes.c_int32 * len(ks))(*ks)

    def kernel() -> None:
        status = launch(features.data_ptr(), scores.data_ptr(), gated_ptrs, masks.data_ptr(), batch, channels,
                        grid[0], grid[1], ks_array, len(ks), _FEATURE_TYPE[dtype],
                        torch.cuda.current_stream().cuda_stream)
        if status != 0:
            raise FornetError(f"fornet_topk_gate_launch returned CUDA error {status}")

    kernel()
    torch.cuda.synchronize()
    masks_out = masks.cpu().numpy()
    mismatched = int(np.sum(np.any(masks_out != ref_masks, axis=1)))
    gated_exact = all(
        np.array_equal(g.cpu().numpy().view(np.uint16 if dtype == "fp16" else np.uint32),
                       r.view(np.uint16 if dtype == "fp16" else np.uint32))
        for g, r in zip(gated, ref_gated, strict=True)
    )
    baseline = TopKGate(REFERENCE_RATIOS).eval().to(device)
    with torch.no_grad():
        kernel_ms = cuda_event_times(kernel, iters, warmup)
        torch_ms = cuda_event_times(lambda: baseline(features, scores), iters, warmup)
    return CaseResult(
        batch=batch, dtype=dtype, scores=kind, channels=channels, grid=grid, ks=tuple(ks),
        masks_exact=mismatched == 0, gated_exact=gated_exact, mismatched_cells=mismatched,
        kernel_ms_median=statistics.median(kernel_ms), kernel_ms_p90=_p90(kernel_ms),
        torch_ms_median=statistics.median(torch_ms), torch_ms_p90=_p90(torch_ms),
    )



def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def to_markdown(results: list[CaseResult], environment: dict[str, str]) -> str:
    """The results table (GPU compute time per call, CUDA events, median and p90)."""
    lines = [
        "# TopKGate kernel vs NumPy reference and PyTorch baseline",
        "",
        *(f"- {key}: {value}" for key, value in environment.items()),
        "- timing: GPU time of one gate call (CUDA events around the launch), no host copies",
        "",
        "| batch | dtype | scores | C | grid | exact | kernel ms (median / p90) | PyTorch ms (median / p90) "
        "| speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        speedup = r.torch_ms_median / r.kernel_ms_median if r.kernel_ms_median > 0 else float("nan")
        lines.append(
            f"| {r.batch} | {r.dtype} | {r.scores} | {r.channels} | {r.grid[0]}x{r.grid[1]} | "
            f"{'yes' if r.exact else f'NO ({r.mismatched_cells} cells)'} | "
            f"{r.kernel_ms_median:.3f} / {r.kernel_ms_p90:.3f} | {r.torch_ms_median:.3f} / {r.torch_ms_p90:.3f} | "
            f"{speedup:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The harness's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where results.json/.md go")
    parser.add_argument("--grid", type=parse_hw, default=(128, 256), metavar="HxW",
                        help="selector grid (default: 128x256, Cityscapes 1024x2048 at stride 8)")
    parser.add_argument("--channels", type=int, default=256, metavar="C", help="feature channels (default: 256)")
    parser.add_argument("--batches", default="1,2,4", help="comma-separated batch sizes (default: 1,2,4)")
    parser.add_argument("--dtypes", default="fp32,fp16", help="feature dtypes (default: fp32,fp16)")
    parser.add_argument("--iters", type=int, default=50, help="timed iterations per case (default: 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations first (default: 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nvcc", type=Path, help="nvcc to use (default: $CUDACXX, PATH, /usr/local/cuda/bin)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Run every case; 0 when all are exact, 1 otherwise."""
    args = build_parser().parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or any(d not in _FEATURE_TYPE for d in dtypes):
        raise FornetError(f"--dtypes takes fp32 and/or fp16, got {args.dtypes!r}")
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    machine = harness_machine(args.nvcc)
    with tempfile.TemporaryDirectory() as build:
        launch = load_launcher(compile_gate_library(machine.nvcc, machine.device.sm, Path(build)))
        results = [
            run_case(launch, batch=batch, dtype=dtype, kind=kind, channels=args.channels, grid=args.grid,
                     iters=args.iters, warmup=args.warmup, seed=args.seed + index)
            for index, (batch, dtype, kind) in enumerate(
                (b, d, k) for b in batches for d in dtypes for k in SCORE_KINDS)
        ]
    return write_harness_results(args.out, machine, [{**asdict(r), "exact": r.exact} for r in results],
                                 [r.exact for r in results], to_markdown(results, machine.environment))


if __name__ == "__main__":
    sys.exit(main())
