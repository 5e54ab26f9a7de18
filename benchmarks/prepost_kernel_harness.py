"""Numerics and speed of the runtime's CUDA pre/post kernels against the CPU reference (needs a CUDA GPU).

Runs ``runtime/prepost.cu`` exactly as the TensorRT segmenter does (through
:class:`fornet.runtime.cuda.prepost.GpuPrePost`, compiled with nvcc through pycuda, on the GPU's
primary context) on frames of several sizes, and compares with :mod:`fornet.runtime.cpu_prepost`:

* pre (uint8 BGR frame -> network input, float32 / float16 NCHW or raw uint8 NHWC): expected bit
  for bit equal to the CPU's OpenCV + NumPy result; the pass criterion allows one grey level of the
  resize (OpenCV builds differ), reported as the maximum absolute difference and mismatch count;
* post (float32 / float16 scores with ties and NaN, or uint8 / int32 engine labels -> uint8 labels
  at the frame size, plus the colour overlay): must be exactly equal.

In the same run it times, per case, the GPU stages with CUDA events (pre: frame upload + kernel;
post: kernel + labels download) next to the CPU implementation (``perf_counter``).

    python benchmarks/prepost_kernel_harness.py --out build/prepost-harness

Writes ``results.json`` and ``results.md`` to ``--out``, prints a summary, exits 1 on any failure
(2 when pycuda, a GPU or nvcc is missing). Needs only pycuda and this package.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.cli.command import friendly_errors
from fornet.errors import FornetError
from fornet.normalization import IMAGENET_MEAN, IMAGENET_STD
from fornet.options import parse_hw

#: Pre cases: name -> (input dtype, raw NHWC input, channel order of the network input).
PRE_CASES = {"fp32": (np.float32, False, "RGB"), "fp16": (np.float16, False, "RGB"), "raw-bgr": (np.uint8, True, "BGR")}
#: Post cases: name -> dtype of the network output (scores for floats, labels for integers).
POST_CASES = {"scores-fp32": np.float32, "scores-fp16": np.float16, "labels-u8": np.uint8, "labels-i32": np.int32}
OVERLAY_ALPHA = 0.5


@dataclass(frozen=True)
class CaseResult:
    """One stage on one frame size."""

    stage: str
    case: str
    frame: tuple[int, int]
    network: tuple[int, int]
    exact: bool
    passed: bool
    max_abs_diff: float
    mismatches: int
    gpu_ms_median: float
    gpu_ms_p90: float
    cpu_ms_median: float


def _io(size: tuple[int, int], classes: int, input_dtype: Any, raw: bool, order: str, output_dtype: Any) -> Any:
    from fornet.calibration.labels import TRAIN_COLORS
    from fornet.runtime.model_io import make_model_io

    colors = np.resize(TRAIN_COLORS, (classes, 3))
    io = make_model_io(size, IMAGENET_MEAN, IMAGENET_STD, [f"class_{i}" for i in range(classes)], colors)
    labels = np.dtype(output_dtype).kind in "ui"
    return replace(io, input_dtype=np.dtype(input_dtype), raw_input=raw, channel_order=order,
                   output_dtype=np.dtype(output_dtype), labels_output=labels,
                   output_name="labels" if labels else "logits")


def _scores(dtype: Any, classes: int, size: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "ui":
        return rng.integers(-2 if dtype == np.int32 else 0, classes + 3, size).astype(dtype)
    scores = np.round(rng.standard_normal((classes, *size)), 1).astype(dtype)  # ties
    scores[:, 0, :8] = np.nan
    scores[1, 1, :8] = np.nan
    return scores


def _gpu_time(cuda: Any, stream: Any, work: Callable[[], None], iters: int, warmup: int) -> list[float]:
    start, end = cuda.Event(), cuda.Event()
    for _ in range(warmup):
        work()
    times = []
    for _ in range(iters):
        start.record(stream)
        work()
        end.record(stream)
        end.synchronize()
        times.append(end.time_since(start))
    return times


def _cpu_time(work: Callable[[], object], iters: int) -> float:
    times = []
    for _ in range(max(3, iters // 5)):
        begin = time.perf_counter()
        work()
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def run_pre(cuda: Any, stream: Any, frame: np.ndarray, network: tuple[int, int], case: str, iters: int,
            warmup: int) -> CaseResult:
    """GPU pre of one frame vs :func:`fornet.runtime.cpu_prepost.preprocess_frame`."""
    from fornet.runtime.cpu_prepost import preprocess_frame
    from fornet.runtime.cuda.prepost import GpuPrePost

    dtype, raw, order = PRE_CASES[case]
    io = _io(network, 19, dtype, raw, order, np.float32)
    expected = preprocess_frame(frame, io)
    kernels = GpuPrePost(cuda, io)
    target = cuda.mem_alloc(expected.nbytes)
    try:
        kernels.preprocess(0, frame, int(target), stream)
        got = np.empty_like(expected)
        cuda.memcpy_dtoh_async(got, target, stream)
        stream.synchronize()
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        tolerance = 1.0 if raw else 1 / 255 / min(IMAGENET_STD) + (2e-3 if dtype == np.float16 else 1e-6)
        gpu = _gpu_time(cuda, stream, lambda: kernels.preprocess(0, frame, int(target), stream), iters, warmup)
        cpu = _cpu_time(lambda: preprocess_frame(frame, io), iters)
    finally:
        kernels.free()
        target.free()
    return CaseResult("pre", case, frame.shape[:2], network, bool(np.array_equal(got.view(np.uint8),
                                                                                  expected.view(np.uint8))),
                      bool(diff.max() <= tolerance), float(diff.max()), int((diff > 0).sum()),
                      statistics.median(gpu), _p90(gpu), cpu)


def run_post(cuda: Any, stream: Any, frame: np.ndarray, network: tuple[int, int], case: str, iters: int,
             warmup: int, seed: int) -> CaseResult:
    """GPU post (labels and overlay) vs :func:`fornet.runtime.cpu_prepost.postprocess` and ``overlay``."""
    from fornet.runtime.cpu_prepost import overlay, postprocess
    from fornet.runtime.cuda.prepost import GpuPrePost

    dtype = POST_CASES[case]
    io = _io(network, 19, np.float32, False, "RGB", dtype)
    source = _scores(dtype, 19, network, seed)
    frame_hw = (frame.shape[0], frame.shape[1])
    expected = postprocess(source, frame_hw, io)
    expected_overlay = overlay(frame, expected, io.palette_bgr, OVERLAY_ALPHA)
    kernels = GpuPrePost(cuda, io)
    scratch = cuda.mem_alloc(int(np.prod(io.input_shape(1))) * 4)
    device_source = cuda.to_device(np.ascontiguousarray(source))
    try:
        kernels.preprocess(0, frame, int(scratch), stream)  # uploads the frame the overlay reads

        def post() -> None:
            kernels.postprocess(0, int(device_source), network, frame_hw, OVERLAY_ALPHA, stream)

        post()
        stream.synchronize()
        labels, drawn = kernels.results(0, frame_hw, True)
        assert drawn is not None
        mismatches = int((labels != expected).sum() + (drawn != expected_overlay).sum())
        worst = max(np.abs(labels.astype(int) - expected).max(), np.abs(drawn.astype(int) - expected_overlay).max())
        gpu = _gpu_time(cuda, stream, post, iters, warmup)
        cpu = _cpu_time(lambda: overlay(frame, postprocess(source, frame_hw, io), io.palette_bgr, OVERLAY_ALPHA),
                        iters)
    finally:
        kernels.free()
        scratch.free()
        device_source.free()
    return CaseResult("post", case, frame_hw, network, mismatches == 0, mismatches == 0, float(worst), mismatches,
                      statistics.median(gpu), _p90(gpu), cpu)


def to_markdown(results: list[CaseResult], environment: dict[str, str]) -> str:
    """The results table."""
    lines = [
        "# Runtime pre/post CUDA kernels vs the CPU reference", "",
        *(f"- {key}: {value}" for key, value in environment.items()),
        "- GPU time: CUDA events; pre = frame upload + kernel, post = kernel + labels and overlay download",
        "- CPU time: perf_counter around fornet.runtime.cpu_prepost (OpenCV + NumPy)", "",
        "| stage | case | frame | network | exact | pass | max diff | mismatches | GPU ms (median / p90) | CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(f"| {r.stage} | {r.case} | {r.frame[0]}x{r.frame[1]} | {r.network[0]}x{r.network[1]} | "
                     f"{'yes' if r.exact else 'no'} | {'yes' if r.passed else 'NO'} | {r.max_abs_diff:.3g} | "
                     f"{r.mismatches} | {r.gpu_ms_median:.3f} / {r.gpu_ms_p90:.3f} | {r.cpu_ms_median:.2f} |")
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [parse_hw(item) for item in text.split(",") if item.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The harness's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where results.json/.md go")
    parser.add_argument("--frames", type=_sizes, default=_sizes("1024x2048,720x1280,480x640,512x1024"),
                        metavar="HxW,...", help="frame sizes (default: 1024x2048,720x1280,480x640,512x1024)")
    parser.add_argument("--network", type=parse_hw, default=(512, 1024), metavar="HxW",
                        help="network input size (default: 512x1024)")
    parser.add_argument("--pre", default=",".join(PRE_CASES), help=f"pre cases (default: {','.join(PRE_CASES)})")
    parser.add_argument("--post", default=",".join(POST_CASES), help=f"post cases (default: {','.join(POST_CASES)})")
    parser.add_argument("--iters", type=int, default=50, help="timed GPU iterations per case (default: 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed GPU iterations first (default: 10)")
    parser.add_argument("--device", type=int, default=0, help="CUDA device (default: 0)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _cases(text: str, known: dict[str, Any], flag: str) -> list[str]:
    cases = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cases if c not in known]
    if unknown:
        raise FornetError(f"{flag} takes {', '.join(known)}; unknown: {', '.join(unknown)}")
    return cases


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Run every case; 0 when all pass, 1 otherwise."""
    args = build_parser().parse_args(argv)
    pre_cases = _cases(args.pre, PRE_CASES, "--pre")
    post_cases = _cases(args.post, POST_CASES, "--post")
    from fornet.runtime.cuda.context import CudaContext

    context = CudaContext(args.device)  # PycudaUnavailableError / NoGpuError name the fix
    out = ensure_writable_dir(args.out)
    results: list[CaseResult] = []

    def run_cases() -> None:
        """Every case with the context current; the stream goes before the context is released."""
        cuda = context.driver
        stream = cuda.Stream()
        for index, size in enumerate(args.frames):
            frame = np.random.default_rng(args.seed + index).integers(0, 256, (*size, 3), dtype=np.uint8)
            results.extend(run_pre(cuda, stream, frame, args.network, case, args.iters, args.warmup)
                           for case in pre_cases)
            results.extend(run_post(cuda, stream, frame, args.network, case, args.iters, args.warmup,
                                    args.seed + index) for case in post_cases)

    context.close(run_cases)  # release() only after the `with` block: pycuda pops before it detaches
    environment = {"gpu": f"{context.name} (sm_{context.compute_capability[0]}{context.compute_capability[1]})",
                   "python": sys.version.split()[0]}
    payload = {"environment": environment, "cases": [asdict(r) for r in results]}
    write_text_atomic(out / "results.json", json.dumps(payload, indent=2) + "\n")
    markdown = to_markdown(results, environment)
    write_text_atomic(out / "results.md", markdown)
    print(markdown)
    failures = [r for r in results if not r.passed]
    print(f"{len(results) - len(failures)}/{len(results)} cases pass; wrote {out / 'results.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
