"""The one-shot device check plans its steps and checks its own inputs on any machine (--dry-run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "device_check.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": sys.executable}, timeout=120)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_plans_every_step_and_writes_the_summary(tmp_path: Path) -> None:
    done = run("--dry-run", "--out", str(tmp_path / "check"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "check" / "summary.json").read_text())
    assert summary["status"] == "dry run" and summary["input_problems"] == []
    names = [step["name"] for step in summary["steps"]]
    assert names == ["environment", "compile_prepost", "prepost_kernels", "pycuda_runtime", "video", "plugin_build",
                     "pytest_gpu", "compile_topk_gate_kernel", "gate_kernel", "deepstream_parser_kernel",
                     "plugin_harness", "plugin_harness_memcheck"]
    assert [step["name"] for step in summary["steps"] if step["background"]] == ["plugin_build"]
    assert "time budget: 300 s for the steps, after about 60 s for the pycuda build" in done.stdout
    commands = {step["name"]: " ".join(step["command"]) for step in summary["steps"]}
    assert "--grid 128x256 --batches 1,2,3,4 --dtypes fp32,fp16" in commands["gate_kernel"]
    assert "plugin_check.py --strict" in commands["plugin_build"] and "--device" not in commands["plugin_build"]
    assert "--device" in commands["plugin_harness"]
    assert "--compute-sanitizer memcheck" in commands["plugin_harness_memcheck"]
    assert "-m gpu" in commands["pytest_gpu"] and "test_tensorrt_runtime_lifecycle.py" in commands["pytest_gpu"]
    assert "video_device_step.py" in commands["video"] and "--device cuda --precision fp16" in commands["video"]
    assert "(pycuda built with parallel compilation)" in done.stdout
    assert "Commands" in (tmp_path / "check" / "summary.md").read_text()


def fake_bundle(folder: Path, skip: str = "", sizes: dict[str, int] | None = None) -> None:
    """Empty stand-ins named as pip names each listed distribution (an sdist for pycuda, wheels for the rest)."""
    folder.mkdir(exist_ok=True)
    for line in (REPO / "benchmarks" / "device-requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(skip + "=="):
            continue
        name, version = line.split("==")
        file = folder / (f"{name}-{version}.tar.gz" if name == "pycuda" else
                         f"{name.replace('-', '_')}-{version}-py3-none-any.whl")
        with file.open("wb") as handle:
            handle.truncate((sizes or {}).get(name, 1000))


def test_bundle_list_is_pinned_complete_and_names_what_it_is_for() -> None:
    check = load_device_check()
    pins, problems = check.read_bundle()
    assert problems == []
    assert {"pycuda", "pydantic", "pynvvideocodec", "pytools", "siphash24"} <= set(pins)
    assert not {"onnx", "onnxruntime", "opencv-python-headless", "cmake", "pytest"} & set(pins)  # the machine's


def test_bundle_list_refuses_unpinned_lines(tmp_path: Path) -> None:
    listing = tmp_path / "bundle.txt"
    listing.write_text("pycuda==2026.1\npydantic>=2\n")
    _, problems = load_device_check().read_bundle(listing)
    assert any("'pydantic>=2' is not pinned" in p for p in problems)
    assert any("lacks pynvvideocodec" in p for p in problems)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_checks_a_wheels_folder_against_the_list(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    fake_bundle(wheels, skip="pycuda")
    done = run("--dry-run", "--out", str(tmp_path / "check"), "--wheels", str(wheels))
    assert done.returncode == 2
    assert "lacks pycuda==2026.1" in done.stderr and "--fetch-wheels" in done.stderr
    fake_bundle(wheels)
    assert run("--dry-run", "--out", str(tmp_path / "check"), "--wheels", str(wheels)).returncode == 0
    (wheels / "onnx-1.23.2-cp312-cp312-manylinux_2_28_x86_64.whl").write_bytes(b"")
    done = run("--dry-run", "--out", str(tmp_path / "check"), "--wheels", str(wheels))
    assert done.returncode == 2 and "onnx-1.23.2" in done.stderr and "does not list" in done.stderr


def test_dry_run_refuses_a_bundle_over_40_mb(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    fake_bundle(wheels, sizes={"PyNvVideoCodec": 41_000_000})  # sparse: no disk used
    problems = load_device_check().bundle_problems(wheels)
    assert problems == [f"{wheels} holds 41.0 MB, over the bundle's 40 MB"]


def test_unknown_option_is_refused() -> None:
    done = run("--frobnicate")
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr


def load_device_check():
    """benchmarks/ is not a package: import the script by path."""
    import importlib.util

    name = "device_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "device_check.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_the_check_fits_six_minutes_with_the_pycuda_build() -> None:
    device_check = load_device_check()
    assert device_check.BUDGET_S + device_check.PYCUDA_BUILD_S <= 360


def test_steps_run_in_order_beside_a_background_step_and_stop_at_the_budget(tmp_path: Path) -> None:
    """Real processes: the background step runs while the next step does, is joined where a step says so,
    and a step that no longer fits the budget is skipped, not started."""
    device_check = load_device_check()
    python = sys.executable
    marker = tmp_path / "built"
    steps = [
        device_check.Step("build", [python, "-c", f"import time, pathlib; time.sleep(1.0); "
                                                  f"pathlib.Path({str(marker)!r}).write_text('x'); print('built')"],
                          30, background=True),
        device_check.Step("beside", [python, "-c", f"import pathlib; print(pathlib.Path({str(marker)!r}).exists())"],
                          30),
        device_check.Step("after", [python, "-c", f"import pathlib; assert pathlib.Path({str(marker)!r}).exists()"],
                          30, joins="build"),
        device_check.Step("slow", [python, "-c", "import time; time.sleep(30)"], 30),
        device_check.Step("late", [python, "-c", "print('never')"], 30),
    ]
    device_check.run_steps(steps, tmp_path, budget_s=4.0)
    build, beside, after, slow, late = steps
    assert (build.rc, build.output_tail) == (0, ["built"])
    assert (beside.rc, beside.output_tail) == (0, ["False"])  # ran while the build was still running
    assert after.rc == 0  # waited for the build
    assert slow.rc == 124 and "timed out" in slow.output_tail[-1] and slow.seconds < 10
    assert late.rc == 124 and late.output_tail == ["skipped: the check's time budget is spent"]
    assert (tmp_path / "logs" / "build.log").read_text().strip() == "built"


def test_environment_reports_pycuda_by_its_version_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """pycuda has no ``__version__``: the step reported it "missing" on a machine where it ran."""
    import types

    pycuda = types.ModuleType("pycuda")
    pycuda.VERSION_TEXT = "2026.1"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    found = load_device_check().environment()
    assert found["pycuda"] == "2026.1"
    assert found["numpy"] == __import__("numpy").__version__


def load_build_pycuda():
    import importlib.util

    name = "build_pycuda"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "build_pycuda.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def tiny_extension_sdist(tmp_path: Path, sources: int) -> Path:
    """An sdist of one C extension made of ``sources`` files (pycuda's shape, in small)."""
    import tarfile

    project = tmp_path / "src" / "tinyext-0.1"
    project.mkdir(parents=True)
    names = [f"part{i}.c" for i in range(sources)]
    for i, name in enumerate(names[1:], 1):
        (project / name).write_text(f"int part{i}(void) {{ return {i}; }}\n")
    calls = " + ".join(f"part{i}()" for i in range(1, sources))
    (project / names[0]).write_text(
        "#include <Python.h>\n" + "".join(f"int part{i}(void);\n" for i in range(1, sources)) +
        f"static PyObject *total(PyObject *self, PyObject *args) {{ return PyLong_FromLong({calls}); }}\n"
        'static PyMethodDef methods[] = {{"total", total, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};\n'
        'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tinyext", "", -1, methods};\n'
        "PyMODINIT_FUNC PyInit_tinyext(void) { return PyModule_Create(&module); }\n")
    (project / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        f"setup(name='tinyext', version='0.1', ext_modules=[Extension('tinyext', {names!r})])\n")
    sdist = tmp_path / "tinyext-0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(project, arcname=project.name)
    return sdist


def test_build_pycuda_compiles_one_extensions_sources_in_parallel(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel builds and works, and the sources of its one extension were compiled at the same time."""
    import threading
    import time
    import zipfile

    from setuptools._distutils import unixccompiler

    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    compile_one = unixccompiler.UnixCCompiler._compile

    def timed(self, *args, **kwargs):  # the real compiler, timed (and held long enough to overlap)
        start = time.monotonic()
        compile_one(self, *args, **kwargs)
        time.sleep(0.5)
        with lock:
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(unixccompiler.UnixCCompiler, "_compile", timed)
    build = load_build_pycuda()
    assert build.main([str(tiny_extension_sdist(tmp_path, 4)), "--out", str(tmp_path / "out"), "--jobs", "4"]) == 0
    wheel = next((tmp_path / "out").glob("tinyext-0.1-*.whl"))
    assert len(spans) == 4
    overlapping = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert overlapping >= 2, f"the sources were compiled one by one: {spans}"
    with zipfile.ZipFile(wheel) as archive:
        library = next(name for name in archive.namelist() if name.startswith("tinyext") and name.endswith(".so"))
        archive.extract(library, tmp_path / "site")
    done = subprocess.run([sys.executable, "-c", "import tinyext; print(tinyext.total())"], cwd=tmp_path / "site",
                          capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "6", done.stderr
    from setuptools._distutils import ccompiler

    assert ccompiler.CCompiler.compile.__name__ == "compile"  # the patch is undone


def test_build_pycuda_refuses_a_missing_sdist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_build_pycuda().main([str(tmp_path / "pycuda-0.tar.gz"), "--out", str(tmp_path)]) == 2
    assert "--fetch-wheels" in capsys.readouterr().err


def test_check_system_names_what_the_machine_lacks(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    check = load_device_check()
    monkeypatch.setattr(check, "SYSTEM_MODULES", {"numpy": "numpy", "no_such_module_here": "the example package"})
    assert check.main(["--check-system"]) == 2
    err = capsys.readouterr().err
    assert "lacks no_such_module_here (the example package)" in err and "device-requirements.txt" in err
    assert "numpy" not in err
    monkeypatch.setattr(check, "SYSTEM_MODULES", {"numpy": "numpy"})
    assert check.main(["--check-system"]) == 0


@pytest.mark.slow
def test_video_step_runs_and_records_on_the_cpu(tmp_path: Path) -> None:
    """The video step at toy sizes on the CPU: the same code the GPU machine runs with --device cuda."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "video_device_step.py"), "--out",
                           str(tmp_path / "video"), "--device", "cpu", "--precision", "fp32", "--frame-size", "64x128",
                           "--input-size", "32x64", "--frames", "6", "--rounds", "1", "--min-iters", "2",
                           "--duration-s", "0"], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "video" / "results.json").read_text())
    result = record["result"]
    assert result["frames"] == 6 and result["readers"] == ["pyav"]
    assert result["engine_fps"] > 0 and result["pipeline_fps"] > 0 and result["pipeline_over_engine"] > 0
    assert set(result["stages_ms"]) == {"decode", "pre", "infer", "post", "render", "encode"}
    assert (result["gpu_prepost"], result["stage_clock"], result["frames_on_device"]) == (False, "wall", False)
    assert 0 < result["prepost_share"] < 1 and result["frame_age_ms"]["p99_ms"] >= result["frame_age_ms"]["p90_ms"]
    assert len(result["targets"]) == 3
    markdown = (tmp_path / "video" / "results.md").read_text()
    assert "| engine-only FPS |" in markdown and "pre/post: CPU (stage times: wall)" in markdown
    assert "| pipeline_over_engine >= 0.9 |" in markdown
