"""INT8 accuracy and ONNX Runtime CPU latency, FP32 vs INT8, for one checkpoint (``benchmarks/int8_results.md``).

One run does, in order:

1. ``fornet-export``'s Python API with ``--int8``: FP32 export (verified against PyTorch),
   calibration on ``--data``'s train split, ``fornet_int8.onnx`` and ``fornet_int8_tensorrt.onnx``
   and the accuracy gate of each on its val split (mIoU of both files, drop, per-class deltas,
   pixel agreement overall and on the boundary band, Top-K cells per ratio).
2. Latency of ``fornet.onnx`` and ``fornet_int8.onnx`` with ONNX Runtime's CPU provider through
   the product's :class:`~fornet.runtime.onnxrt.OnnxRuntimeBackend` (default session options,
   ``--threads`` intra-op threads), on the same preprocessed val image: ``--warmup`` runs each,
   then ``--runs`` rounds that alternate FP32 and INT8 so both see the same machine load. The time
   is the backend's ``last_inference_time`` (the session run only: no preprocessing, no argmax).

Example (the numbers in benchmarks/int8_results.md)::

    python benchmarks/int8_bench.py --name lite --ckpt RUN/best.pth --data DATA --input-size 256x512 \\
        --out build/int8-bench/lite

Writes ``int8_bench.json`` and ``int8_bench.md`` (a results row and the latency table) to ``--out``.
Exit status 1 when the accuracy gate refuses the INT8 file (the report is still written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.int8_calibrate import ModelInput
from fornet.cli.command import friendly_errors
from fornet.contract import INPUT_NAME
from fornet.export import ExportOptions, export_onnx
from fornet.export.int8.accuracy_gate import AccuracyGateError
from fornet.export.int8.manifest import MANIFEST_NAME, Int8Manifest
from fornet.export.int8.options import Int8Options
from fornet.options import hw_arg
from fornet.runtime.model_io import ModelSidecar


def _cpu() -> dict[str, Any]:
    """CPU model, core count, VNNI support and load averages (the machine may be shared)."""
    model, flags = platform.processor(), ""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        text = info.read_text()
        model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                     model)
        flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return {"model": model, "cores": os.cpu_count(), "avx512_vnni": "avx512_vnni" in flags,
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {"median_ms": round(float(np.median(ms)), 1), "p10_ms": round(float(np.percentile(ms, 10)), 1),
            "p90_ms": round(float(np.percentile(ms, 90)), 1), "min_ms": round(float(ms.min()), 1),
            "max_ms": round(float(ms.max()), 1), "stdev_ms": round(statistics.pstdev(ms.tolist()), 1),
            "runs": len(seconds)}


def measure_latency(fp32: Path, int8: Path, feed: np.ndarray, threads: int, warmup: int,
                    runs: int) -> dict[str, dict[str, float]]:
    """Interleaved ONNX Runtime CPU timings of both files on ``feed``."""
    from tqdm import tqdm

    from fornet.runtime.onnxrt import OnnxRuntimeBackend

    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    with OnnxRuntimeBackend(fp32, "cpu", threads=threads) as a, OnnxRuntimeBackend(int8, "cpu", threads=threads) as b:
        backends = {"fp32": a, "int8": b}
        for backend in backends.values():
            for _ in range(warmup):
                backend.infer({INPUT_NAME: feed})
        for _ in tqdm(range(runs), desc="latency (fp32, int8 interleaved)", unit="round"):
            for name, backend in backends.items():
                backend.infer({INPUT_NAME: feed})
                times[name].append(backend.last_inference_time or 0.0)
    return {name: _stats(values) for name, values in times.items()}


def _markdown(result: dict[str, Any]) -> str:
    gate, lat = result["accuracy_gate"], result["latency"]
    rows = [
        f"### {result['name']}: `{result['variant']}` at {result['input_size']}",
        "",
        f"Command: `{result['command']}`",
        "",
        "| mIoU FP32 | mIoU INT8 | drop (points) | pixel agreement | boundary-band agreement | mask agreement | "
        "k exact | gate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {gate['fp32_miou']:.2f} | {gate['int8_miou']:.2f} | {gate['miou_drop_points']:.2f} | "
        f"{100 * gate['pixel_agreement']:.3f}% | {100 * gate['boundary_agreement']:.3f}% | "
        f"{100 * gate['mask_agreement']:.3f}% | {gate['k_exact']} | {'PASS' if gate['passed'] else 'FAIL'} |",
        "",
    ]
    trt = result.get("tensorrt") or {}
    if trt.get("accuracy_gate"):
        t = trt["accuracy_gate"]
        rows += [
            f"`{trt['file']}` (TensorRT layout, FP16 base; {trt['tool']}; scored on ONNX Runtime with graph "
            f"optimisations off, i.e. exactly its Q/DQ numerics): mIoU {t['int8_miou']:.2f} "
            f"(FP32 {t['fp32_miou']:.2f}, "
            f"drop {t['miou_drop_points']:.2f} points), pixel agreement {100 * t['pixel_agreement']:.3f}%, boundary "
            f"band {100 * t['boundary_agreement']:.3f}%, mask agreement {100 * t['mask_agreement']:.3f}%, k exact "
            f"{t['k_exact']}, gate {'PASS' if t['passed'] else 'FAIL'}. TensorRT placement issues: none in this "
            f"file, {len(result['quantization'].get('tensorrt_placement_issues', []))} in `fornet_int8.onnx`.",
            "",
        ]
    if lat is not None:
        rows += [
            f"ONNX Runtime {result['onnxruntime']} CPU, {result['threads']} threads, input "
            f"{result['input_shape']}, {lat['fp32']['runs']} interleaved rounds after {result['warmup']} warm-up "
            f"runs; load average before / after: {result['cpu_before']['load_average']} / "
            f"{result['cpu_after']['load_average']}",
            "",
            "| file | median ms | p10 | p90 | min | max | stdev |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(f"| {name} | {s['median_ms']} | {s['p10_ms']} | {s['p90_ms']} | {s['min_ms']} | {s['max_ms']} | "
              f"{s['stdev_ms']} |" for name, s in lat.items()),
            "",
            f"Speed-up INT8 vs FP32: {result['speedup_median']:.2f}x (medians), {result['speedup_min']:.2f}x (minima)",
            "",
        ]
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's argument parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="label of this row in the results")
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint to export")
    parser.add_argument("--data", required=True, type=Path, help="Cityscapes-layout folder (train: calibration, "
                                                                 "val: accuracy gate and the timed image)")
    parser.add_argument("--input-size", required=True, type=hw_arg, metavar="HxW", help="export resolution")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--calib-method", default="entropy", help="entropy, percentile or minmax (default: entropy)")
    parser.add_argument("--calib-images", type=int, default=500, help="calibration images (default: 500 or all)")
    parser.add_argument("--max-miou-drop", type=float, default=1.0, help="accuracy gate limit in points (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default: 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per file (default: 3)")
    parser.add_argument("--runs", type=int, default=20, help="timed rounds, each runs both files (default: 20)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when the gate passes, 1 when it refuses the INT8 file."""
    import onnxruntime

    args = build_parser().parse_args(argv)
    out = ensure_writable_dir(args.out)
    int8 = Int8Options(calib_data=args.data, calib_images=args.calib_images, calib_method=args.calib_method,
                       max_miou_drop=args.max_miou_drop, recalibrate=True)
    options = ExportOptions(input_size=args.input_size, gate="plugin", verify_data=args.data, int8=int8)
    cpu_before = _cpu()
    passed = True
    try:
        export_onnx(args.ckpt, out, options)
    except AccuracyGateError as exc:
        print(exc, file=sys.stderr)
        passed = False
    manifest = Int8Manifest.load(out / MANIFEST_NAME).to_dict()  # JSON-ready sections for the report
    sidecar = ModelSidecar.load(out / "fornet.onnx.json")
    latency = None
    shape: list[int] = []
    if passed:
        normalisation = (sidecar.input.mean, sidecar.input.std)
        feed = ModelInput(args.input_size, *normalisation).batch([CityscapesDataset(args.data, "val")[0].image])
        shape = list(feed.shape)
        latency = measure_latency(out / "fornet.onnx", out / "fornet_int8.onnx", feed, args.threads, args.warmup,
                                  args.runs)
    report = {
        "name": args.name, "variant": sidecar.variant, "input_size": "x".join(map(str, args.input_size)),
        "command": "python benchmarks/int8_bench.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "calibration": {"method": args.calib_method, "images": manifest["calibration_key"]["images"]["count"]},
        "accuracy_gate": manifest["accuracy_gate"], "quantization": manifest["quantization"],
        "tensorrt": manifest.get("tensorrt"),
        "onnxruntime": onnxruntime.__version__, "threads": args.threads, "warmup": args.warmup,
        "input_shape": "x".join(map(str, shape)), "latency": latency,
        "speedup_median": latency["fp32"]["median_ms"] / latency["int8"]["median_ms"] if latency else None,
        "speedup_min": latency["fp32"]["min_ms"] / latency["int8"]["min_ms"] if latency else None,
        "cpu_before": cpu_before, "cpu_after": _cpu(),
    }
    write_text_atomic(out / "int8_bench.json", json.dumps(report, indent=2) + "\n")
    text = _markdown(report)
    write_text_atomic(out / "int8_bench.md", text + "\n")
    print(text)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
