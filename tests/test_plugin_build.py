"""fornet-build-plugin and the C++ plugin against real TensorRT headers.

The header-dependent tests use ``$TENSORRT_INCLUDE_DIR`` (TensorRT's ``include/``, 10.3 or 11.x) when
set, else every header set in ``../shared/tensorrt-headers`` beside the checkout (what CI has): a
syntax check of the plugin with ``-Wall -Wextra -Wpedantic -Werror`` against each, and a full CMake
build of the statically registering libfornet_plugins.so (linked against a stand-in libnvinfer that
only provides ``getPluginRegistry``) as a fat binary for CMake's default architectures. The plugin's
behaviour through TensorRT's interfaces is tests/test_plugin_harness.py's job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fornet.cli.build_plugin import main
from fornet.export.tensorrt import plugin_build
from fornet.export.tensorrt.plugin_build import PluginBuild, PluginBuildError, parse_cuda_archs
from fornet.runtime.cuda.toolchain import find_nvcc
from fornet.runtime.tensorrt.plugins import PLUGIN_LIBRARY_NAME
from tests.helpers.plugins import cubin_archs, nvcc_version, plugin_check

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "plugins"
#: ``$TENSORRT_INCLUDE_DIR`` when set, else the shared header sets (oldest first).
INCLUDE_DIRS = ([Path(os.environ["TENSORRT_INCLUDE_DIR"])] if os.environ.get("TENSORRT_INCLUDE_DIR")
                else [h.include_dir for h in plugin_check.header_sets()])
needs_headers = pytest.mark.skipif(
    not INCLUDE_DIRS, reason="no TensorRT headers: set TENSORRT_INCLUDE_DIR to TensorRT's include/ (10.3+) or put "
                             "them in ../shared/tensorrt-headers/<version>")
NVINFER_STAND_IN = """
namespace nvinfer1 { class IPluginRegistry; }
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{ return nullptr; }
"""


def cuda_include() -> Path:
    nvcc = find_nvcc()
    candidates = [nvcc.resolve().parent.parent / "include"] if nvcc else []
    for candidate in [*candidates, Path("/usr/local/cuda/include")]:
        if (candidate / "cuda_runtime_api.h").is_file():
            return candidate
    pytest.skip("CUDA headers not found")


def test_parse_cuda_archs() -> None:
    assert parse_cuda_archs("87;90") == ["87", "90"]
    assert parse_cuda_archs("87, 90a 100-real") == ["87", "90a", "100-real"]
    with pytest.raises(PluginBuildError, match=r"'87' \(Jetson Orin\)"):
        parse_cuda_archs("sm_87")
    with pytest.raises(PluginBuildError):
        parse_cuda_archs(" ; ")


def test_cmake_commands() -> None:
    build = PluginBuild(source=PLUGINS, out_dir=Path("/o"), tensorrt_root=Path("/trt"), cuda_archs=("87", "90"),
                        static_registration=False, nvcc=Path("/cuda/bin/nvcc"), jobs=3)
    configure, compile_ = build.commands()
    assert configure[:5] == ["cmake", "-S", str(PLUGINS), "-B", "/o/cmake-build"]
    assert {"-DTENSORRT_ROOT=/trt", "-DCMAKE_CUDA_ARCHITECTURES=87;90", "-DFORNET_STATIC_REGISTRATION=OFF",
            "-DCMAKE_CUDA_COMPILER=/cuda/bin/nvcc", "-UTENSORRT_INCLUDE_DIR"} <= set(configure)
    assert compile_ == ["cmake", "--build", "/o/cmake-build", "--parallel", "3"]
    default = PluginBuild(source=PLUGINS, out_dir=Path("/o")).commands()[0]
    assert "-DFORNET_STATIC_REGISTRATION=ON" in default
    assert not any(arg.startswith(("-DTENSORRT_ROOT", "-DCMAKE_CUDA_ARCH")) for arg in default)


def test_help_needs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--tensorrt-root" in capsys.readouterr().out


def test_missing_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", str(tmp_path), "--out", str(tmp_path / "o"), "--cuda-arch", "87"]) == 2
    assert "plugin sources not found" in capsys.readouterr().err


def test_missing_cmake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_build.shutil, "which", lambda name: None)
    with pytest.raises(PluginBuildError, match=r"cmake not found"):
        plugin_build.build_plugin_library(PluginBuild(source=PLUGINS, out_dir=tmp_path, nvcc=Path("/x/nvcc")))


def test_missing_nvcc(tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    with pytest.raises(PluginBuildError, match=r"nvcc not found.*CUDACXX"):
        plugin_build.build_plugin_library(PluginBuild(source=PLUGINS, out_dir=tmp_path, nvcc=None))


def system_tensorrt_headers() -> list[Path]:
    return [*Path("/usr/include").glob("*/NvInferRuntime.h"), *Path("/usr/include").glob("NvInferRuntime.h"),
            *Path("/usr/local/TensorRT/include").glob("NvInferRuntime.h")]


def test_cmake_reports_missing_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("cmake") is None or find_nvcc() is None:
        pytest.skip("needs cmake and nvcc")
    if system_tensorrt_headers():
        pytest.skip("TensorRT is installed in the system paths, so CMake would find it")
    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    build = PluginBuild(source=PLUGINS, out_dir=tmp_path / "build" / "plugins", tensorrt_root=tmp_path / "no-tensorrt",
                        cuda_archs=("87",), nvcc=find_nvcc())
    with pytest.raises(PluginBuildError, match=r"(?s)TensorRT not found.*libnvinfer-dev.*--tensorrt-root"):
        plugin_build.build_plugin_library(build)
    assert not (tmp_path / "build" / "plugins").exists(), "a failed first build leaves no cmake-build/ behind"


@pytest.mark.fault
def test_a_failed_build_from_the_command_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``fornet build-plugin`` without TensorRT fails in CMake's configure step; the build tree it started
    (build/plugins/cmake-build/) is removed, a kept one from an earlier build is not."""
    if shutil.which("cmake") is None or find_nvcc() is None:
        pytest.skip("needs cmake and nvcc")
    if system_tensorrt_headers():
        pytest.skip("TensorRT is installed in the system paths, so CMake would find it")
    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    args = ["--tensorrt-root", str(tmp_path / "no-tensorrt"), "--cuda-arch", "87"]
    assert main(args) == 2
    assert "TensorRT not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no build/plugins/cmake-build/ left behind"
    kept = tmp_path / "build" / "plugins" / "cmake-build"
    kept.mkdir(parents=True)
    (kept / "CMakeCache.txt").write_text("# an earlier build's tree\n")
    assert main(args) == 2
    assert kept.is_dir()


@needs_headers
@pytest.mark.parametrize("include_dir", INCLUDE_DIRS, ids=lambda p: p.parent.name if p.name == "include" else p.name)
def test_plugin_source_is_warning_free_against_the_headers(include_dir: Path) -> None:
    result = subprocess.run(
        ["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
         f"-isystem{include_dir}", f"-isystem{cuda_include()}", str(PLUGINS / "topk_gate_plugin.cpp")],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def built_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """libfornet_plugins.so built by fornet-build-plugin (static registration, CMake's default architectures)
    against the newest header set."""
    if not INCLUDE_DIRS:
        pytest.skip("no TensorRT headers")
    if shutil.which("cmake") is None or find_nvcc() is None:
        pytest.skip("needs cmake and nvcc")
    root = tmp_path_factory.mktemp("tensorrt-root")
    (root / "include").symlink_to(INCLUDE_DIRS[-1], target_is_directory=True)
    (root / "lib").mkdir()
    stand_in = root / "nvinfer.cpp"
    stand_in.write_text(NVINFER_STAND_IN)
    subprocess.run(["g++", "-shared", "-fPIC", str(stand_in), "-o", str(root / "lib" / "libnvinfer.so")], check=True)
    out = tmp_path_factory.mktemp("plugin")
    assert main(["--tensorrt-root", str(root), "--out", str(out)]) == 0  # no GPU here: the default list
    return out / PLUGIN_LIBRARY_NAME


@needs_headers
def test_library_exports_the_dynamic_entry_points(built_plugin: Path) -> None:
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(built_plugin)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert {"getCreators", "setLoggerFinder"} <= set(symbols)
    assert not [s for s in symbols if "TopKGatePlugin" in s]  # everything else stays hidden


@needs_headers
def test_library_is_a_fat_binary_for_orin_hopper_and_thor(built_plugin: Path) -> None:
    """CMake's default architectures: SASS for sm_87 (Orin) and sm_90 (Hopper), and sm_110 (Thor) with CUDA 13."""
    nvcc = find_nvcc()
    assert nvcc is not None
    expected = {75, 80, 86, 87, 89, 90} | ({110} if nvcc_version(nvcc) >= (13, 0) else set())
    assert cubin_archs(built_plugin) == expected
