"""The CUDA sources compile with nvcc (compile only: no GPU here) for Jetson Orin (sm_87), Hopper
(sm_90) and, with CUDA 13, Jetson Thor (sm_110), each alone and as one fat binary holding the code of
all three; the kernel header is plain C/C++; the GPU harness builds its library and refuses to run
without a GPU."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fornet.runtime.cuda.toolchain import find_nvcc
from tests.helpers.plugins import cubin_archs, nvcc_version

REPO = Path(__file__).resolve().parent.parent
KERNEL = REPO / "plugins" / "topk_gate_kernel.cu"
#: nvinfer's segmentation parser on the GPU, shipped in DeepStream packages.
DEEPSTREAM_PARSER = REPO / "export" / "deepstream" / "segmentation_argmax.cu"
CUDA_SOURCES = [KERNEL, DEEPSTREAM_PARSER, *sorted((REPO / "runtime").rglob("*.cu"))]  # runtime/cuda/prepost.cu
#: Sources compiled with every warning an error.
STRICT_SOURCES = (KERNEL, DEEPSTREAM_PARSER)
NVCC = find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found ($CUDACXX, PATH, /usr/local/cuda/bin/nvcc)")


#: Orin, Hopper, and Thor where nvcc knows it (sm_110 from CUDA 13; it was sm_101 in 12.8/12.9).
ARCHS = ("87", "90", *(("110",) if NVCC is not None and nvcc_version(NVCC) >= (13, 0) else ()))


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"
    return result


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_nvcc_compiles(source: Path, arch: str, tmp_path: Path) -> None:
    strict = ["--Werror", "all-warnings"] if source in STRICT_SOURCES else []
    run([str(NVCC), "-c", "-std=c++17", "-O3", f"-arch=sm_{arch}", *strict, str(source), "-o",
         str(tmp_path / f"{source.stem}_sm{arch}.o")])


@needs_nvcc
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_nvcc_builds_one_fat_binary_for_every_target(source: Path, tmp_path: Path) -> None:
    """One object holding SASS for each of ARCHS (what a Jetson fleet of Orin and Thor, or a build server, runs)."""
    gencode = [f"-gencode=arch=compute_{arch},code=sm_{arch}" for arch in ARCHS]
    strict = ["--Werror", "all-warnings"] if source in STRICT_SOURCES else []
    target = tmp_path / f"{source.stem}_fat.o"
    run([str(NVCC), "-c", "-std=c++17", "-O3", *gencode, *strict, str(source), "-o", str(target)])
    assert cubin_archs(target) == {int(arch) for arch in ARCHS}


@pytest.mark.parametrize("language", ["c", "c++"])
def test_kernel_header_is_plain_c_and_cxx(language: str, tmp_path: Path) -> None:
    compiler = shutil.which("g++" if language == "c++" else "gcc")
    if compiler is None or NVCC is None:
        pytest.skip(f"needs the host {language} compiler and the CUDA headers")
    run([compiler, "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-x", language, f"-I{cuda_include(NVCC)}",
         str(REPO / "plugins" / "topk_gate_kernel.cuh")])


def cuda_include(nvcc: Path) -> Path:
    """The toolkit's include folder (nvcc may be a wrapper script outside the toolkit)."""
    for candidate in (nvcc.resolve().parent.parent / "include", Path("/usr/local/cuda/include")):
        if (candidate / "cuda_runtime_api.h").is_file():
            return candidate
    pytest.skip(f"CUDA headers not found next to {nvcc} or in /usr/local/cuda/include")


def load_harness() -> ModuleType:
    """benchmarks/ is not a package: import the script by path (registered, as dataclasses need)."""
    name = "gate_kernel_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "gate_kernel_harness.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@needs_nvcc
def test_harness_builds_a_library_exporting_the_launcher(tmp_path: Path) -> None:
    harness = load_harness()
    assert NVCC is not None
    library = harness.compile_gate_library(NVCC, "87", tmp_path)
    symbols = run(["nm", "-D", "--defined-only", str(library)]).stdout
    assert " T fornet_topk_gate_launch" in symbols


def test_harness_needs_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run the harness itself")
    assert load_harness().main(["--out", str(tmp_path / "results")]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_harness_rejects_unknown_dtypes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_harness().main(["--out", str(tmp_path), "--dtypes", "int8"]) == 2
    assert "--dtypes takes fp32 and/or fp16" in capsys.readouterr().err
