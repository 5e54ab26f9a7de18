"""Build ``libfornet_plugins.so`` (the TopKGate TensorRT plugin) with CMake (``fornet build-plugin``).

Run it on the target (the library links the local TensorRT and CUDA)::

    fornet-build-plugin                                   # Jetson: JetPack's TensorRT, this GPU's arch
    fornet-build-plugin --tensorrt-root ~/TensorRT-10.3.0.26 --cuda-arch "87;90" --out /opt/fornet/lib

The library lands in ``--out`` (default ``build/plugins/`` of the checkout, where
:func:`fornet.runtime.tensorrt.plugins.load_plugin_library` looks first), replaced atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fornet.atomic import atomic_path, ensure_writable_dir
from fornet.export.tensorrt.errors import TensorRTBuildError
from fornet.runtime.cuda.device import NoGpuError, cuda_device
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
    #: also build the conformance harness (plugins/harness; needs ``static_registration=False``)
    harness: bool = False
    #: further ``-D...`` arguments for CMake's configure step (compiler flags, sanitizers)
    cmake_args: tuple[str, ...] = ()

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
        if self.harness:
            configure.append("-DFORNET_BUILD_HARNESS=ON")
        configure.extend(self.cmake_args)
        build = ["cmake", "--build", str(self.build_dir), "--parallel", str(self.jobs or os.cpu_count() or 1)]
        return [configure, build]


def build_plugin_library(build: PluginBuild, *, verbose: bool = False) -> Path:
    """Configure and compile ``build``; copy the library into ``build.out_dir`` atomically.

    Raises:
        PluginBuildError: no sources, no CMake, no nvcc, or a failed configure/compile (with the
            tail of CMake's output).
    """
    built = run_cmake(build, verbose=verbose)
    target = build.out_dir / PLUGIN_LIBRARY_NAME
    with atomic_path(target) as tmp:  # never rewrite a library a running process has mapped
        shutil.copyfile(built, tmp)
        tmp.chmod(0o755)
    return target


def run_cmake(build: PluginBuild, *, verbose: bool = False, cmake: str = "cmake") -> Path:
    """Configure and compile ``build`` in ``build.build_dir`` (incrementally); return the library there.

    Raises:
        PluginBuildError: as :func:`build_plugin_library`.
    """
    if not (build.source / "CMakeLists.txt").is_file():
        raise PluginBuildError(
            f"plugin sources not found at {build.source} (installed from a wheel?); run from a git checkout "
            "of fornet-deploy or pass --source <checkout>/plugins"
        )
    if shutil.which(cmake) is None:
        raise PluginBuildError("cmake not found on PATH; install it (`sudo apt install cmake` or `pip install cmake`)")
    if build.nvcc is None:
        raise PluginBuildError(
            "nvcc not found (looked at $CUDACXX, PATH, /usr/local/cuda/bin/nvcc); install the CUDA toolkit "
            "(JetPack ships it in /usr/local/cuda) or set CUDACXX to the nvcc path"
        )
    created = [folder for folder in (build.build_dir, *build.build_dir.absolute().parents) if not folder.exists()]
    ensure_writable_dir(build.build_dir)
    for command in build.commands():
        command = [cmake, *command[1:]]
        result = subprocess.run(command, capture_output=not verbose, text=True, check=False)
        if result.returncode != 0:
            _clean_failed_build(build, created)
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
    return built


def _clean_failed_build(build: PluginBuild, created: list[Path]) -> None:
    """After a failed build, remove what it created (``created``: the folders it made, deepest first): its build
    tree (one kept from an earlier build stays, so the next build is incremental), then each folder above it
    while that is empty."""
    if build.build_dir in created:
        shutil.rmtree(build.build_dir, ignore_errors=True)
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def default_cuda_archs() -> tuple[str, ...] | None:
    """This machine's GPU, when there is one; else CMake's default list."""
    try:
        return (cuda_device().sm,)
    except NoGpuError:
        return None
