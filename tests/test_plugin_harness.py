"""The plugin conformance harness (plugins/harness, ``make plugin-check``) against the real TensorRT headers.

The harness implements TensorRT's side of the plugin interfaces and drives libfornet_plugins.so (built
without static registration, loaded with dlopen) through the creator and IPluginV3 in TensorRT's order.
These tests run it for every header set in ../shared/tensorrt-headers (or ``$TENSORRT_INCLUDE_DIRS``),
show that it fails on planted defects (each a patched copy of the plugin source: nothing in the shipped
source switches a defect on), and run the host steps under AddressSanitizer/LeakSanitizer and UBSan.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fornet.runtime.cuda.toolchain import find_nvcc
from tests.helpers.plugins import plugin_check

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "plugins"
BUILD_ROOT = REPO / "build" / "plugin-check"
SANITIZE = "-fsanitize=address,undefined"
SANITIZED_LIBRARY = (f"-DCMAKE_CXX_FLAGS={SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined",
                     f"-DCMAKE_SHARED_LINKER_FLAGS={SANITIZE}")
SANITIZER_ARGS = (*SANITIZED_LIBRARY, f"-DCMAKE_EXE_LINKER_FLAGS={SANITIZE}")
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:protect_shadow_gap=0", "UBSAN_OPTIONS": "print_stacktrace=1"}


HEADER_SETS = plugin_check.header_sets()
TOOLS = shutil.which("cmake") is not None and find_nvcc() is not None
needs_headers = pytest.mark.skipif(
    not HEADER_SETS or not TOOLS,
    reason="needs TensorRT headers (../shared/tensorrt-headers/<version> or $TENSORRT_INCLUDE_DIRS), cmake and nvcc")
by_version = pytest.mark.parametrize("headers", HEADER_SETS, ids=lambda h: h.version)


@pytest.fixture(scope="module")
def cases_file() -> Path:
    return plugin_check.write_cases(BUILD_ROOT / "cases.txt", plugin_check.exporter_cases())


@pytest.fixture(scope="module")
def builds() -> dict[str, object]:
    """The harness build of each header set (the ones `make plugin-check` caches: incremental here)."""
    return {h.version: plugin_check.build_harness(h, BUILD_ROOT) for h in HEADER_SETS}


@pytest.fixture(scope="module")
def sanitized_build() -> object:
    """Library and harness built with ASan + UBSan against the oldest header set (JetPack 6's 10.3)."""
    return plugin_check.build_harness(HEADER_SETS[0], BUILD_ROOT, tag="-asan", cmake_args=SANITIZER_ARGS)


def patched_library(tmp_path: Path, old: str, new: str, cmake_args: tuple[str, ...] = ()) -> Path:
    """libfornet_plugins.so built (getCreators only) from a copy of plugins/ with ``old`` replaced by ``new``."""
    from fornet.export.tensorrt.plugin_build import PluginBuild, run_cmake

    source = tmp_path / "plugins"
    shutil.copytree(PLUGINS, source, ignore=shutil.ignore_patterns("harness", "__pycache__"))
    plugin = source / "topk_gate_plugin.cpp"
    text = plugin.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the defect's anchor is gone from topk_gate_plugin.cpp: {old!r}"
    plugin.write_text(text.replace(old, new), encoding="utf-8")
    build = PluginBuild(source=source, out_dir=tmp_path / "out", tensorrt_root=HEADER_SETS[0].include_dir,
                        cuda_archs=(plugin_check.DEFAULT_ARCH,), static_registration=False, nvcc=find_nvcc(),
                        cmake_args=cmake_args)
    return run_cmake(build)


# ------------------------------------------------------------------------------------- the cases

def test_cases_are_the_exporters_nodes(tmp_path: Path) -> None:
    """The case file holds what the exporter writes: k from topk_counts at the export sizes, both types."""
    cases = {case.name: case for case in plugin_check.exporter_cases()}
    # docs/ops/TopKGate.md: r101 at 1024x2048 (grid 128x256) and lite at 1024x2048 (grid 64x128)
    assert cases["r101-1024x2048-float32"].ks == (3277, 6554, 9830, 13107)
    assert cases["r101-1024x2048-float32"].channels == 256
    assert cases["lite-1024x2048-float16"].grid == (64, 128) and cases["lite-1024x2048-float16"].batch == -1
    assert cases["lite-1024x2048-float16"].ks == (819, 1638, 2458, 3277)
    assert cases["lite-128x256-float32"].ks == (13, 26, 38, 51)  # what tests/test_export_graph.py's export holds
    assert {case.dtype for case in cases.values()} == {"float32", "float16"}
    text = plugin_check.write_cases(tmp_path / "cases.txt", [cases["r101-1024x2048-float32"]]).read_text()
    assert "creator TopKGate 1 fornet" in text
    assert "attr ks INTS 3277 6554 9830 13107" in text and "attr plugin_namespace STRING fornet" in text
    assert "attr ratios FLOATS 0.10000000149011612 0.20000000298023224" in text  # float32 values, exactly


def test_header_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Either <dir>/include or <dir> itself; versions from NvInferVersion.h (10.x's ENTERPRISE macros too)."""
    flat = tmp_path / "flat"
    nested = tmp_path / "nested" / "include"
    for folder, text in ((flat, "#define NV_TENSORRT_MAJOR 10\n#define NV_TENSORRT_MINOR 3\n"
                                "#define NV_TENSORRT_PATCH 0\n"),
                         (nested, "#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n"
                                  "#define TRT_PATCH_ENTERPRISE 0\n#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n")):
        folder.mkdir(parents=True)
        (folder / "NvInferRuntime.h").write_text("")
        (folder / "NvInferVersion.h").write_text(text)
    monkeypatch.setenv(plugin_check.HEADERS_ENV, f"{tmp_path / 'nested'}{os.pathsep}{flat}")
    assert [(h.version, h.include_dir) for h in plugin_check.header_sets()] == [("10.3.0", flat), ("11.1.0", nested)]
    monkeypatch.setenv(plugin_check.HEADERS_ENV, str(tmp_path))
    with pytest.raises(plugin_check.PluginCheckError, match="holds no TensorRT headers"):
        plugin_check.header_sets()


def test_missing_headers_skip_or_fail_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(plugin_check.HEADERS_ENV, str(tmp_path))
    assert plugin_check.main(["--build-root", str(tmp_path / "b")]) == 0
    assert "plugin-check: skipped:" in capsys.readouterr().err
    assert plugin_check.main(["--build-root", str(tmp_path / "b"), "--strict"]) == 2
    assert "plugin-check: error:" in capsys.readouterr().err


def test_shared_headers_are_found_for_ci() -> None:
    """CI runs from a clone with ../shared beside it: the three header sets must be found there."""
    if os.environ.get(plugin_check.HEADERS_ENV) or not plugin_check.DEFAULT_HEADER_ROOT.is_dir():
        pytest.skip(f"{plugin_check.DEFAULT_HEADER_ROOT} absent or overridden by ${plugin_check.HEADERS_ENV}")
    assert {"10.3.0", "10.16.0", "11.1.0"} <= {h.version for h in HEADER_SETS}


# ------------------------------------------------------------------------------------ the harness

@needs_headers
@by_version
def test_every_host_check_passes(headers, builds, cases_file: Path) -> None:
    run = plugin_check.run_harness(builds[headers.version], cases_file)
    assert run.ok, run.output[-4000:]
    assert run.host >= 40 and run.device == 0 and run.passed == run.checks


@needs_headers
def test_make_plugin_check_prints_one_line_per_version(builds, capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin_check.main([]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("plugin-check: ")]
    assert len(lines) == len(HEADER_SETS)
    for line, headers in zip(lines, HEADER_SETS, strict=True):
        assert line.startswith(f"plugin-check: TensorRT {headers.version} headers: ") and ", 0 failed" in line


@needs_headers
def test_device_steps_need_a_gpu(builds, cases_file: Path) -> None:
    """--device on a machine without a CUDA device is a failed check, never a silent pass."""
    if plugin_check.gpu_arch() is not None:
        pytest.skip("a GPU is present: the device check runs the device steps")
    run = plugin_check.run_harness(builds[HEADER_SETS[0].version], cases_file, device=True)
    assert run.rc == 1 and run.failed == 1 and "FAIL [device] a CUDA device is visible" in run.output


@needs_headers
def test_device_data_is_the_reference(tmp_path: Path) -> None:
    """The files the device steps compare with are fornet.export.topk_gate_reference's outputs."""
    import numpy as np

    from fornet.export.topk_gate_reference import topk_gate_reference

    case = next(c for c in plugin_check.device_cases() if c.scores == "special" and c.dtype == "float16")
    folder = plugin_check.write_device_data(tmp_path, [case])[case.name]
    shape = (case.batch, case.channels, *case.grid)
    features = np.fromfile(folder / "features.bin", dtype=np.float16).reshape(shape)
    scores = np.fromfile(folder / "scores.bin", dtype=np.float32).reshape(case.batch, 1, *case.grid)
    assert np.isnan(scores).any()
    gated, masks = topk_gate_reference(features, scores, case.ks)
    np.testing.assert_array_equal(np.fromfile(folder / "masks.bin", dtype=np.float32), masks.ravel())
    assert (np.fromfile(folder / "gated_3.bin", dtype=np.uint16) == gated[3].view(np.uint16).ravel()).all()
    text = plugin_check.write_cases(tmp_path / "cases.txt", [case], {case.name: folder}).read_text()
    assert f"data {folder}" in text and f"features float16 {case.batch} {case.channels}" in text


@needs_headers
def test_malformed_case_file_is_refused(builds, tmp_path: Path) -> None:
    bad = tmp_path / "cases.txt"
    bad.write_text("creator TopKGate 1 fornet\ncase x\nfeatures int8 1 2 3 4\nend\n")
    run = plugin_check.run_harness(builds[HEADER_SETS[0].version], bad)
    assert run.rc == 2 and "cases.txt:3: features type must be float32 or float16" in run.output


# --------------------------------------------------------------------------------- planted defects

DEFECTS = {
    "masks-follow-the-features-type": (
        "    outputTypes[numRatios()] = DataType::kFLOAT;",
        "    outputTypes[numRatios()] = inputTypes[kFeatures];",
        "getOutputDataTypes over every (features, scores) type pair"),
    "hwc8-accepted": (
        "    if (desc.format != TensorFormat::kLINEAR)\n",
        "    if (desc.format != TensorFormat::kLINEAR && desc.format != TensorFormat::kHWC8)\n",
        "supportsFormatCombination(features): exactly the table's"),
    "ks-not-serialised": (
        '        mSerialFields.emplace_back("ks", mKs.data(), PluginFieldType::kINT32, numRatios());\n',
        "",
        "getFieldsToSerialize holds the node's ks and ratios"),
    "masks-batch-fixed-to-1": (
        "        masks.d[0] = inputs[kFeatures].d[0];",
        "        masks.d[0] = exprBuilder.constant(1);",
        "output shapes evaluated for three sizes"),
}


@pytest.mark.slow
@needs_headers
@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_planted_defect_fails_the_harness(defect: str, builds, cases_file: Path, tmp_path: Path) -> None:
    old, new, failing_check = DEFECTS[defect]
    library = patched_library(tmp_path, old, new)
    run = plugin_check.run_harness(builds[HEADER_SETS[0].version], cases_file, library=library)
    assert not run.ok and run.rc == 1 and run.failed > 0
    failures = [line for line in run.output.splitlines() if line.startswith("FAIL")]
    assert any(failing_check in line for line in failures), run.output[-3000:]


# -------------------------------------------------------------------------------------- sanitizers

@pytest.mark.slow
@needs_headers
def test_host_steps_are_clean_under_asan_lsan_and_ubsan(sanitized_build, cases_file: Path) -> None:
    """Every object the plugin makes is freed by TensorRT's deletes; no invalid access, no undefined behaviour."""
    run = plugin_check.run_harness(sanitized_build, cases_file, env={**os.environ, **SANITIZER_ENV})
    assert run.ok, run.output[-4000:]
    assert "Sanitizer" not in run.output and "runtime error:" not in run.output


@pytest.mark.slow
@needs_headers
def test_planted_leak_is_reported_by_lsan(sanitized_build, cases_file: Path, tmp_path: Path) -> None:
    """The sanitizer run can fail: attachToContext leaking a clone is caught."""
    library = patched_library(tmp_path, "    return clone();\n}", "    clone();\n    return clone();\n}",
                              SANITIZED_LIBRARY)
    run = plugin_check.run_harness(sanitized_build, cases_file, library=library, env={**os.environ, **SANITIZER_ENV})
    assert run.rc != 0 and not run.ok
    assert "LeakSanitizer: detected memory leaks" in run.output and "attachToContext" in run.output
