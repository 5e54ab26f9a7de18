"""Build a wheel from a C/C++ extension sdist (pycuda's) with each extension's sources compiled in parallel.

setuptools compiles the sources of one extension one after another (``build_ext --parallel`` only
runs whole extensions side by side), so pycuda's ``_driver`` extension alone takes minutes on one
core. This script runs the sdist's own PEP 517 build (``setuptools.build_meta``, in this process,
no build isolation: the offline bundle provides setuptools and wheel) with setuptools' compiler
patched to compile an extension's sources on a thread pool; linking stays as it was.

    python benchmarks/build_pycuda.py build/device-wheels/pycuda-2026.1.tar.gz --out build/pycuda-wheel

Prints the wheel's path. ``--jobs`` defaults to the usable CPUs. CUDA is found as pycuda's own
build finds it (``nvcc`` on PATH; ``device_check.sh`` puts /usr/local/cuda/bin first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def parallel_compile(jobs: int) -> Iterator[None]:
    """While active, setuptools' ``CCompiler.compile`` compiles the sources of one call on ``jobs`` threads."""
    from setuptools._distutils import ccompiler

    serial = ccompiler.CCompiler.compile

    def compile_parallel(self: Any, sources: list[str], output_dir: str | None = None, macros: Any = None,
                         include_dirs: Any = None, debug: bool = False, extra_preargs: Any = None,
                         extra_postargs: Any = None, depends: Any = None) -> list[str]:
        macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)

        def one(obj: str) -> None:
            source, ext = build[obj]
            self._compile(obj, source, ext, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, [obj for obj in objects if obj in build]))
        return objects

    ccompiler.CCompiler.compile = compile_parallel
    try:
        yield
    finally:
        ccompiler.CCompiler.compile = serial


def unpack_sdist(sdist: Path, into: Path) -> Path:
    """The sdist's source folder, unpacked under ``into``."""
    with tarfile.open(sdist) as archive:
        archive.extractall(into, filter="data")
    folders = [entry for entry in into.iterdir() if entry.is_dir()]
    if len(folders) != 1:
        raise SystemExit(f"error: {sdist.name} does not unpack into one source folder")
    return folders[0]


def build_wheel(sdist: Path, out: Path, jobs: int) -> Path:
    """Build ``sdist``'s wheel into ``out`` with parallel compilation; the wheel's path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-pycuda-") as scratch:
        source = unpack_sdist(sdist, Path(scratch))
        cwd = Path.cwd()
        os.chdir(source)
        sys.path.insert(0, str(source))  # setup.py imports helpers beside it (pycuda: aksetup_helper)
        try:
            from setuptools import build_meta

            with parallel_compile(jobs):
                name = build_meta.build_wheel(str(out.resolve()))
        finally:
            sys.path.remove(str(source))
            os.chdir(cwd)
    return out / name


def build_parser() -> argparse.ArgumentParser:
    """The script's arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sdist", type=Path, help="the source distribution (.tar.gz)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the wheel goes")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="compiler processes at once (default: the usable CPUs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build and print the wheel's path."""
    args = build_parser().parse_args(argv)
    if not args.sdist.is_file():
        print(f"error: no sdist {args.sdist}; run benchmarks/device_check.sh --fetch-wheels first", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"error: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    print(build_wheel(args.sdist, args.out, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
