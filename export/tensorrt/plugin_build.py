"""``fornet-build-plugin``: build ``libfornet_plugins.so`` (the TopKGate TensorRT plugin) with CMake.

Run it on the target (the library links the local TensorRT and CUDA)::

    fornet-build-plugin                                   # Jetson: JetPack's TensorRT, this GPU's arch
    fornet-build-plugin --tensorrt-root ~/TensorRT-10.3.0.26 --cuda-arch "87;90" --out /opt/fornet/lib

The library lands in ``--out`` (default ``build/plugins/`` of the checkout, where
:func:`fornet.runtime.tensorrt.plugins.load_plugin_library` looks first), replaced atomically.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fornet.atomic import atomic_path, ensure_writable_dir
from fornet.cli_utils import friendly_errors
from fornet.export.tensorrt.errors import TensorRTBuildError
from fornet.paths import default_plugin_build_dir, plugin_source_dir
from fornet.runtime.cuda.toolchain import find_nvcc
from fornet.runtime.tensorrt.plugins import PLUGIN_LIBRARY_NAME

_ARCH = re.compile(r"\d{2,3}[af]?(-real|-virtual)?")


class PluginBuildError(TensorRTBuildError):
    """The plugin library cannot be configured or compiled here."""


def parse_cuda_archs(text: str) -> list[str]:
    """``"87;90"`` or ``"87,90"`` -> ``["87", "90"]`` (CMake's CUDA_ARCHITECTURES values)."""
    archs = [part.strip() for part in re.split(r"[;,\s]+", text) if part.strip()]
    bad = [arch for arch in archs if not _ARCH.fullmatch(arch)]
    if not archs or bad:
        raise PluginBuildError(
            f"invalid CUDA architectures {text!r}; give compute capabilities without the dot, e.g. "
            "'87' (Jetson Orin), '87;90' (Orin and H100), '86' (RTX 30xx)"
        )
    return archs


@dataclass(frozen=True)
class PluginBuild:
    """One plugin build: where from, where to, against what."""

    source: Path
    out_dir: Path
    tensorrt_root: Path | None = None
    cuda_archs: tuple[str, ...] | None = None
    static_registration: bool = True
    nvcc: Path | None = None
    jobs: int | None = None

    @property
    def build_dir(self) -> Path:
        """CMake's build tree."""
        return self.out_dir / "cmake-build"

    def commands(self) -> list[list[str]]:
        """The CMake configure and build command lines."""
        configure = [
            "cmake", "-S", str(self.source), "-B", str(self.build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DFORNET_STATIC_REGISTRATION={'ON' if self.static_registration else 'OFF'}",
            # forget paths found by an earlier run, so a new --tensorrt-root takes effect
            "-UTENSORRT_INCLUDE_DIR", "-UTENSORRT_NVINFER_LIBRARY",
        ]
        if self.tensorrt_root is not None:
            configure.append(f"-DTENSORRT_ROOT={self.tensorrt_root}")
        if self.cuda_archs:
            configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(self.cuda_archs)}")
        if self.nvcc is not None:
            configure.append(f"-DCMAKE_CUDA_COMPILER={self.nvcc}")
        build = ["cmake", "--build", str(self.build_dir), "--parallel", str(self.jobs or os.cpu_count() or 1)]
        return [configure, build]


def build_plugin_library(build: PluginBuild, *, verbose: bool = False) -> Path:
    """Configure and compile ``build``; copy the library into ``build.out_dir`` atomically.

    Raises:
        PluginBuildError: no sources, no CMake, no nvcc, or a failed configure/compile (with the
            tail of CMake's output).
    """
    if not (build.source / "CMakeLists.txt").is_file():
        raise PluginBuildError(
            f"plugin sources not found at {build.source} (installed from a wheel?); run from a git checkout "
            "of fornet-deploy or pass --source <checkout>/plugins"
        )
    if shutil.which("cmake") is None:
        raise PluginBuildError("cmake not found on PATH; install it (`sudo apt install cmake` or `pip install cmake`)")
    if build.nvcc is None:
        raise PluginBuildError(
            "nvcc not found (looked at $CUDACXX, PATH, /usr/local/cuda/bin/nvcc); install the CUDA toolkit "
            "(JetPack ships it in /usr/local/cuda) or set CUDACXX to the nvcc path"
        )
    ensure_writable_dir(build.build_dir)
    for command in build.commands():
        result = subprocess.run(command, capture_output=not verbose, text=True, check=False)
        if result.returncode != 0:
            output = "" if verbose else (result.stdout + result.stderr)
            tail = "\n".join(output.strip().splitlines()[-25:])
            raise PluginBuildError(
                f"`{' '.join(command)}` failed (exit {result.returncode})" + (f":\n{tail}" if tail else "")
                + "\nfix the cause above; TensorRT is found with --tensorrt-root (or $TENSORRT_ROOT), "
                "CUDA with $CUDACXX"
            )
    built = build.build_dir / PLUGIN_LIBRARY_NAME
    if not built.is_file():
        raise PluginBuildError(f"CMake succeeded but {built} is missing; delete {build.build_dir} and retry")
    target = build.out_dir / PLUGIN_LIBRARY_NAME
    with atomic_path(target) as tmp:  # never rewrite a library a running process has mapped
        shutil.copyfile(built, tmp)
        tmp.chmod(0o755)
    return target


def _default_archs() -> tuple[str, ...] | None:
    """This machine's GPU, when there is one; else CMake's default list."""
    from fornet.runtime.tensorrt.env import NoGpuError, cuda_device

    try:
        return (cuda_device().sm,)
    except NoGpuError:
        return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fornet-build-plugin``."""
    parser = argparse.ArgumentParser(
        prog="fornet-build-plugin",
        description=f"Build {PLUGIN_LIBRARY_NAME} (TensorRT plugin TopKGate/1/fornet) with CMake on this "
        "machine, against its TensorRT (10.3 or newer) and CUDA.",
        epilog="Needs cmake, nvcc and TensorRT's C++ headers (Jetson: `sudo apt install libnvinfer-dev`). "
        "Load the result with --plugin, $FORNET_PLUGIN_LIB, trtexec --staticPlugins=<lib> or "
        "DeepStream's custom-lib-path.",
    )
    parser.add_argument("--tensorrt-root", type=Path, metavar="DIR",
                        help="TensorRT with include/ and lib/ (tarball); default: $TENSORRT_ROOT, then the system "
                        "paths of JetPack / the apt packages")
    parser.add_argument("--cuda-arch", metavar="LIST",
                        help="CUDA architectures, e.g. '87' (Orin) or '87;90'; default: this GPU, else "
                        "75;80;86;87;89;90")
    parser.add_argument("--out", type=Path, metavar="DIR", default=None,
                        help=f"output directory (default: {default_plugin_build_dir()})")
    parser.add_argument("--source", type=Path, metavar="DIR", default=None,
                        help=f"plugin sources (default: {plugin_source_dir()})")
    parser.add_argument("--no-static-registration", action="store_true",
                        help="register only through getCreators (for trtexec --dynamicPlugins / "
                        "IPluginRegistry.load_library); the default also registers on load")
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel compile jobs (default: all cores)")
    parser.add_argument("--verbose", action="store_true", help="show CMake's output")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fornet-build-plugin``."""
    args = build_parser().parse_args(argv)
    build = PluginBuild(
        source=args.source or plugin_source_dir(),
        out_dir=args.out or default_plugin_build_dir(),
        tensorrt_root=args.tensorrt_root,
        cuda_archs=tuple(parse_cuda_archs(args.cuda_arch)) if args.cuda_arch else _default_archs(),
        static_registration=not args.no_static_registration,
        nvcc=find_nvcc(),
        jobs=args.jobs,
    )
    library = build_plugin_library(build, verbose=args.verbose)
    print(f"wrote {library}")
    print(f"use it with: fornet-build --plugin {library} ...  |  export FORNET_PLUGIN_LIB={library}  |  "
          f"trtexec --staticPlugins={library}")
    return 0
