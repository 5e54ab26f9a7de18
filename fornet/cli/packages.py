"""``fornet export --triton REPO`` / ``--deepstream DIR``: the options and the step :mod:`fornet.cli.export` adds.

The repository and the package are written after the ONNX files, each in a staging folder renamed
into place, then checked (Triton's schema and the model files; GLib's key-file reader, the documented
nvinfer keys and the normalisation, numerically).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fornet.export.deepstream.check import check_deepstream_package
from fornet.export.deepstream.package import DEFAULT_URI, DeepStreamOptions, write_deepstream_package
from fornet.export.errors import ExportError
from fornet.export.triton.check import check_repository
from fornet.export.triton.repository import TritonRepositoryOptions, write_triton_repository


def add_package_arguments(parser: argparse.ArgumentParser) -> None:
    """The deployment-package option group."""
    group = parser.add_argument_group("deployment packages (Triton Inference Server, DeepStream)")
    group.add_argument("--triton", type=Path, metavar="REPO",
                       help="also write a Triton model repository (ONNX Runtime, TensorRT plan, Python-backend models)")
    group.add_argument("--triton-plan", type=Path, metavar="PLAN",
                       help="a plan built by `fornet build` (with its .json) to add as the tensorrt_plan model")
    group.add_argument("--triton-instance", choices=("cpu", "gpu"), default="gpu",
                       help="instance kind of the ONNX Runtime and Python models (default: gpu)")
    group.add_argument("--triton-max-batch", type=int, default=8, metavar="N",
                       help="largest dynamic batch (default: 8; used when the batch is dynamic)")
    group.add_argument("--deepstream", type=Path, metavar="DIR",
                       help="also write a DeepStream 7.x nvinfer package (needs --input raw)")
    group.add_argument("--deepstream-uri", default=DEFAULT_URI, metavar="URI",
                       help="deepstream-app source: file:///video.mp4 or rtsp://camera/stream")
    group.add_argument("--replace-packages", action="store_true",
                       help="replace an existing --triton / --deepstream folder (only once the new one is complete)")


def check_package_targets(args: argparse.Namespace) -> None:
    """Refuse, before exporting, what would make the package step fail."""
    for option, folder in (("--triton", args.triton), ("--deepstream", args.deepstream)):
        if folder is not None and folder.exists() and not args.replace_packages:
            raise ExportError(f"{option} {folder} already exists; choose a new folder, or add --replace-packages")
    if args.deepstream is not None and args.input != "raw":
        raise ExportError("--deepstream needs the normalisation inside the graph (nvinfer has one scale for all "
                          "channels): add --input raw (and --channel-order BGR or RGB as the camera delivers)")


def write_packages(args: argparse.Namespace, onnx_path: Path, deployed_onnx: Path) -> None:
    """Write and check the packages asked for (``deployed_onnx``: the precision nvinfer builds from)."""
    if args.triton is not None:
        repo = write_triton_repository(onnx_path, args.triton, TritonRepositoryOptions(
            onnx_instance=args.triton_instance, max_batch=args.triton_max_batch, plan=args.triton_plan,
            overwrite=args.replace_packages))
        print(f"wrote {repo} (models checked against Triton's schema: {', '.join(check_repository(repo))})")
    if args.deepstream is not None:
        folder = write_deepstream_package(deployed_onnx, args.deepstream, DeepStreamOptions(
            uri=args.deepstream_uri, overwrite=args.replace_packages))
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (*args.input_size, 3), dtype=np.uint8) for _ in range(2)]
        checked = check_deepstream_package(folder, deployed_onnx, frames)
        print(f"wrote {folder} (checked with GLib and against the project's preprocessing: {', '.join(checked)})")
