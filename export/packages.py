"""``fornet export --triton REPO`` / ``--deepstream DIR``: the deployment packages written after an export.

The repository and the package are written after the ONNX files, each in a staging folder renamed
into place, then checked (Triton's schema and the model files; GLib's key-file reader, the documented
nvinfer keys, and nvinfer's input path, graph and segmentation parser on real frames: the export's
verification images, ``--verify-data`` or generated street scenes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fornet.export.deepstream.check import check_deepstream_package
from fornet.export.deepstream.package import (
    DEFAULT_URI,
    DeepStreamOptions,
    device_plan_commands,
    write_deepstream_package,
)
from fornet.export.deepstream.package import PACKAGE_KIND as DEEPSTREAM_PACKAGE
from fornet.export.errors import ExportError
from fornet.export.options import ExportOptions, IOFormat
from fornet.export.staging import check_target
from fornet.export.triton.check import check_repository
from fornet.export.triton.repository import PACKAGE_KIND as TRITON_REPOSITORY
from fornet.export.triton.repository import TritonRepositoryOptions, write_triton_repository
from fornet.options import OptionGroup, option

PACKAGES = OptionGroup("deployment packages (Triton Inference Server, DeepStream)")


@dataclass(frozen=True)
class PackageOptions:
    """The deployment packages ``fornet export`` writes after the ONNX files."""

    triton: Path | None = option(None, flag="--triton", parse=Path, metavar="REPO", group=PACKAGES,
                                 help="also write a Triton model repository (ONNX Runtime, TensorRT plan, "
                                      "Python-backend models)")
    triton_plan: Path | None = option(None, flag="--triton-plan", parse=Path, metavar="PLAN", group=PACKAGES,
                                      help="a plan built by `fornet build` (with its .json) to add as the "
                                           "tensorrt_plan model")
    triton_instance: str = option("gpu", flag="--triton-instance", choices=("cpu", "gpu"), group=PACKAGES,
                                  help="instance kind of the ONNX Runtime and Python models")
    triton_max_batch: int = option(8, flag="--triton-max-batch", parse=int, metavar="N", group=PACKAGES,
                                   help="largest dynamic batch (used when the batch is dynamic)")
    deepstream: Path | None = option(None, flag="--deepstream", parse=Path, metavar="DIR", group=PACKAGES,
                                     help="also write a DeepStream 7.x nvinfer package (needs --input raw)")
    deepstream_uri: str = option(DEFAULT_URI, flag="--deepstream-uri", metavar="URI", group=PACKAGES,
                                 help="deepstream-app source: file:///video.mp4 or rtsp://camera/stream")
    replace_packages: bool = option(False, flag="--replace-packages", group=PACKAGES,
                                    help="replace an existing --triton / --deepstream package that fornet export "
                                         "wrote (only once the new one is complete)")


def _overlap(inner: Path, outer: Path) -> bool:
    """Whether two folders are the same folder or one lies inside the other (links and ``..`` resolved)."""
    a, b = inner.resolve(), outer.resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_separate_folders(out: Path, packages: PackageOptions) -> None:
    """Refuse output folders that are the same or nested: publishing one would replace or delete another.

    Raises:
        ExportError: naming both flags and folders (checked before any work, so nothing was written).
    """
    folders = [("--out", out), ("--triton", packages.triton), ("--deepstream", packages.deepstream)]
    named = [(flag, folder) for flag, folder in folders if folder is not None]
    for i, (flag, folder) in enumerate(named):
        for other_flag, other in named[i + 1:]:
            if _overlap(folder, other):
                how = "is the same folder as" if folder.resolve() == other.resolve() else "overlaps"
                raise ExportError(f"{flag} {folder} {how} {other_flag} {other}: each is replaced as a whole, so "
                                  f"one would delete the other's files; give them separate folders, e.g. "
                                  f"{other_flag} {folder.parent / other_flag.lstrip('-')} (nothing was written)")


def check_package_targets(packages: PackageOptions, io: IOFormat, out: Path) -> None:
    """Refuse, before exporting, what would make the package step fail (``out``: the export folder)."""
    check_separate_folders(out, packages)
    for flag, folder, kind in (("--triton", packages.triton, TRITON_REPOSITORY),
                               ("--deepstream", packages.deepstream, DEEPSTREAM_PACKAGE)):
        if folder is not None and folder.exists() and not packages.replace_packages:
            raise ExportError(f"{flag} {folder} already exists; choose a new folder, or add --replace-packages")
        if folder is not None:
            check_target(folder, packages.replace_packages, kind)
    if packages.deepstream is not None and io.input != "raw":
        raise ExportError("--deepstream needs the normalisation inside the graph (nvinfer has one scale for all "
                          "channels): add --input raw (and --channel-order BGR or RGB as the camera delivers)")


def write_packages(packages: PackageOptions, export: ExportOptions, onnx_path: Path, deployed_onnx: Path) -> list[str]:
    """Write and check the packages asked for (``deployed_onnx``: the precision nvinfer builds from; ``export``: the
    input size, the verification images and the ``--target`` module); one line per package saying what was
    written and checked."""
    written = []
    if packages.triton is not None:
        repo = write_triton_repository(onnx_path, packages.triton, TritonRepositoryOptions(
            onnx_instance=packages.triton_instance, max_batch=packages.triton_max_batch, plan=packages.triton_plan,
            overwrite=packages.replace_packages))
        written.append(f"wrote {repo} (models checked against Triton's schema: {', '.join(check_repository(repo))})")
    if packages.deepstream is not None:
        folder = write_deepstream_package(deployed_onnx, packages.deepstream, DeepStreamOptions(
            uri=packages.deepstream_uri, target=export.target, overwrite=packages.replace_packages))
        from fornet.export.verify import load_images  # torch: deferred, `fornet export --help` stays light

        images = load_images(export.input_size, 2, export.verify_data, export.verify_split)
        checked = check_deepstream_package(folder, deployed_onnx, [image[..., ::-1] for image in images])
        written.append(f"wrote {folder} (checked with GLib, and nvinfer's input path and segmentation parser "
                       f"against the project's preprocessing on {len(images)} images: {', '.join(checked)})")
        commands = device_plan_commands(deployed_onnx)
        if commands:
            written.append(f"before deepstream-app, build its strongly typed FP16 plans on the device, in {folder}:")
            written += [f"  {command}" for command in commands]
    return written
