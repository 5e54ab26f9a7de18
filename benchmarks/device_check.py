"""One-shot device check: everything this project can verify on a GPU machine without TensorRT.

Steps (each a separate process with its own time limit, so one failure never hides the others), the
most telling first, as a step that no longer fits the budget (:data:`BUDGET_S`) is skipped:

1. ``environment``: GPU, driver, nvcc, PyTorch, CuPy, pycuda (its ``VERSION_TEXT``) and PyNvVideoCodec
   versions;
2. ``compile_prepost``: ``runtime/cuda/prepost.cu`` compiled by nvcc for this GPU's architecture;
3. ``prepost_kernels``: the pre/post kernels against the CPU path (labels bit-exact, pre within
   one grey level of the resize) (``benchmarks/prepost_kernel_harness.py``);
4. ``pycuda_runtime``: the runtime's pycuda context, stream, pinned-buffer, CUDA-graph and close()
   paths (``benchmarks/pycuda_runtime_check.py``);
5. ``video``: ``fornet bench --video`` on a generated 1024x2048 H.264 clip with the PyTorch backend on
   the GPU (FP16, GPU pre/post kernels) as the engine: engine-only, segmenter and pipeline FPS, their
   ratios, per-stage times, frame age and the reader that ran (``benchmarks/video_device_step.py``);
6. ``plugin_build`` (in the background from here on, on the CPU): the TensorRT plugin harness
   (``plugins/harness``) built against each TensorRT header set, and its host steps;
7. ``pytest_gpu``: ``pytest -m gpu`` (device frames, the PyTorch backend's GPU pre/post, NVDEC, ...);
8. ``compile_topk_gate_kernel`` and ``gate_kernel``: the TopKGate kernel bit-exact against the NumPy
   reference at Cityscapes sizes (128x256 cells, k up to 13,107, batch 1-4, FP32/FP16) and timed beside
   torch.topk + scatter (``benchmarks/gate_kernel_harness.py``);
9. ``deepstream_parser_kernel``: the DeepStream package's GPU segmentation parser
   (``export/deepstream/segmentation_argmax.cu``) against nvinfer's rule in NumPy, bit-exact, and timed
   (``benchmarks/segmentation_argmax_harness.py``);
10. ``plugin_harness``: the plugin's enqueue in two execution contexts on device buffers, bit-exact
   against the NumPy reference; ``plugin_harness_memcheck``: the same under compute-sanitizer memcheck.

    python benchmarks/device_check.py --out build/device-check            # on the GPU machine
    python benchmarks/device_check.py --out build/device-check --dry-run  # anywhere: plan + input checks

Writes ``summary.json`` and ``summary.md`` (and each step's own results in a sub-folder) to
``--out``; exits 0 when every step passed, 1 when one failed, 2 when its inputs are wrong.
``benchmarks/device_check.sh`` installs pycuda offline first (see its ``--fetch-wheels``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CUDA_SOURCES = (REPO / "plugins" / "topk_gate_kernel.cu", REPO / "runtime" / "cuda" / "prepost.cu")
HARNESSES = {**{name: REPO / "benchmarks" / f"{name}.py"
                for name in ("gate_kernel_harness", "prepost_kernel_harness", "pycuda_runtime_check",
                             "segmentation_argmax_harness",
                             "video_device_step", "build_pycuda")},
             "plugin_check": REPO / "plugins" / "harness" / "plugin_check.py"}
#: The offline bundle's one list (pinned, complete: installed with --no-deps) and its size limit.
BUNDLE = REPO / "benchmarks" / "device-requirements.txt"
BUNDLE_LIMIT_MB = 40
#: What the bundle exists for: pycuda (built on the device), the typed records, NVDEC/NVENC.
BUNDLE_REQUIRED = ("pycuda", "pydantic", "pynvvideocodec")
#: What the bundle leaves to the machine: import name -> what to install where it lacks it.
SYSTEM_MODULES = {"torch": "PyTorch with CUDA", "cupy": "CuPy for the machine's CUDA", "numpy": "numpy",
                  "cv2": "opencv-python-headless", "tqdm": "tqdm", "pytest": "pytest and pytest-timeout",
                  "onnxruntime": "onnxruntime", "av": "PyAV (the video step's x264 encoder)"}
#: Seconds the steps may take together: with the offline pycuda build before them (35 s with its
#: sources compiled in parallel; PYCUDA_BUILD_S allowed) the check stays within 6 minutes. A step gets
#: what is left when its own limit is longer, and is skipped once nothing is left.
BUDGET_S = 300
PYCUDA_BUILD_S = 60


@dataclass
class Step:
    """One command of the check and, once run, its outcome."""

    name: str
    command: list[str]
    timeout_s: int
    results: str | None = None  # the step's own results folder, relative to --out
    #: Started and left running beside the next steps (CPU work such as a build); joined before ``joins``.
    background: bool = False
    #: The background step this one waits for before it starts.
    joins: str | None = None
    rc: int | None = None
    seconds: float | None = None
    output_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0


def _gpu_arch() -> str:
    """``sm_XY`` of GPU 0, from nvidia-smi (no Python GPU library needed); ``sm_87`` when unknown."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        done = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                              text=True, check=False)
        first = done.stdout.strip().splitlines()[:1]
        if done.returncode == 0 and first and first[0].replace(".", "").isdigit():
            return "sm_" + first[0].replace(".", "")
    return "sm_87"


def _nvcc() -> str:
    from fornet.runtime.cuda.toolchain import find_nvcc

    found = find_nvcc()
    return str(found) if found is not None else "nvcc"


def plan_steps(out: Path, python: str) -> list[Step]:
    """The steps, in order, with the commands they run."""
    arch, nvcc = _gpu_arch(), _nvcc()
    # Most telling first: a step that no longer fits the budget is skipped, never the kernels' checks.
    compile_steps = {source.stem: Step(f"compile_{source.stem}", [nvcc, "-c", "-std=c++17", "-O3", f"-arch={arch}",
                                                                  str(source), "-o",
                                                                  str(out / "objects" / f"{source.stem}_{arch}.o")],
                                       45)
                     for source in CUDA_SOURCES}
    build, *device_harness = plugin_harness_steps(out, python, arch)
    steps = [
        Step("environment", [python, str(Path(__file__).resolve()), "--environment"], 20),
        compile_steps["prepost"],
        Step("prepost_kernels", [python, str(HARNESSES["prepost_kernel_harness"]), "--out",
                                 str(out / "prepost-kernels")], 45, "prepost-kernels"),
        Step("pycuda_runtime", [python, str(HARNESSES["pycuda_runtime_check"]), "--out",
                                str(out / "pycuda-runtime")], 30, "pycuda-runtime"),
        Step("video", [python, str(HARNESSES["video_device_step"]), "--out", str(out / "video"), "--device", "cuda",
                       "--precision", "fp16"], 75, "video"),
        build,  # nvcc/CMake on the CPU from here on, beside the GPU steps (after the timed video step)
        Step("pytest_gpu", [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-o",
                            "addopts=-ra", f"--junitxml={out / 'pytest-gpu.xml'}", *map(str, gpu_test_files())],
             90),
        compile_steps["topk_gate_kernel"],
        Step("gate_kernel", [python, str(HARNESSES["gate_kernel_harness"]), "--out", str(out / "gate-kernel"),
                             "--grid", "128x256", "--batches", "1,2,3,4", "--dtypes", "fp32,fp16"], 45,
             "gate-kernel"),
        Step("deepstream_parser_kernel", [python, str(HARNESSES["segmentation_argmax_harness"]), "--out",
                                          str(out / "deepstream-parser-kernel")], 40, "deepstream-parser-kernel"),
        *device_harness,
    ]
    return steps


def plugin_harness_steps(out: Path, python: str, arch: str) -> list[Step]:
    """The plugin conformance harness: its build and host steps in the background (after the timed video
    step), then its enqueue steps on device buffers, then the same under compute-sanitizer memcheck
    (one build folder shared; each header set the harness finds)."""
    check = [python, str(HARNESSES["plugin_check"]), "--strict", "--cuda-arch", arch.removeprefix("sm_"),
             "--build-root", str(out / "plugin-harness" / "build")]
    return [Step("plugin_build", [*check, "--out", str(out / "plugin-build")], 150, "plugin-build", background=True),
            Step("plugin_harness", [*check, "--device", "--out", str(out / "plugin-harness")], 60, "plugin-harness",
                 joins="plugin_build"),
            Step("plugin_harness_memcheck", [*check, "--device", "--compute-sanitizer", "memcheck", "--out",
                                             str(out / "plugin-harness-memcheck")], 60, "plugin-harness-memcheck")]


def gpu_test_files() -> list[Path]:
    """The test modules that hold ``gpu`` tests (collecting only them keeps the device's imports few)."""
    return [path for path in sorted((REPO / "tests").glob("test_*.py"))
            if "pytest.mark.gpu" in path.read_text(encoding="utf-8")]


def environment() -> dict[str, str]:
    """Versions of what the check relies on ("missing" when absent)."""
    found: dict[str, str] = {"python": platform.python_version(), "machine": platform.machine()}
    for name, command in (("nvidia-smi", ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap",
                                          "--format=csv,noheader"]), ("nvcc", [_nvcc(), "--version"])):
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
            found[name] = (done.stdout.strip().splitlines() or ["?"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            found[name] = f"missing ({exc})"
    for module in ("torch", "cupy", "pycuda", "numpy", "onnxruntime", "cv2", "PyNvVideoCodec"):
        try:
            found[module] = module_version(importlib.import_module(module))
        except Exception as exc:  # any import failure is a finding, not a crash
            found[module] = f"missing ({type(exc).__name__}: {exc})"
    return found


def module_version(module: object) -> str:
    """A module's version: ``__version__``, or pycuda's ``VERSION_TEXT`` (pycuda has no ``__version__``)."""
    for attribute in ("__version__", "VERSION_TEXT"):
        value = getattr(module, attribute, None)
        if value is not None:
            return str(value)
    return "installed (no version attribute)"


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyNvVideoCodec``, ``pydantic_core`` -> lowercase, ``-``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_bundle(path: Path = BUNDLE) -> tuple[dict[str, str], list[str]]:
    """The bundle list as ``{normalized name: version}`` and what is wrong with it."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if match is None:
            problems.append(f"{path.name} line {number}: {line!r} is not pinned; write NAME==VERSION (the bundle "
                            "is fetched and installed with --no-deps)")
            continue
        pins[normalized(match[1])] = match[2]
    problems += [f"{path.name} lacks {name}: the bundle exists for it" for name in BUNDLE_REQUIRED
                 if name not in pins]
    return pins, problems


def distribution_of(file: Path) -> tuple[str, str] | None:
    """``(normalized name, version)`` of a wheel or sdist file name; None for anything else."""
    name = file.name
    if name.endswith(".whl"):
        parts = name.split("-")
        return (normalized(parts[0]), parts[1]) if len(parts) >= 5 else None
    for suffix in (".tar.gz", ".zip"):
        if name.endswith(suffix) and "-" in name:
            project, version = name.removesuffix(suffix).rsplit("-", 1)
            return normalized(project), version
    return None


def bundle_problems(wheels: Path | None, path: Path = BUNDLE) -> list[str]:
    """What is wrong with the bundle list and, given, with a fetched folder (each pin present, nothing else,
    under :data:`BUNDLE_LIMIT_MB`)."""
    if not path.is_file():
        return [f"the bundle list {path} is missing"]
    pins, problems = read_bundle(path)
    if wheels is None:
        return problems
    if not wheels.is_dir():
        return [*problems, f"no wheels folder {wheels}; run benchmarks/device_check.sh --fetch-wheels {wheels} on a "
                           "networked machine first"]
    found: dict[str, str] = {}
    size = 0
    for file in sorted(wheels.iterdir()):
        dist = distribution_of(file)
        if dist is None:
            continue
        size += file.stat().st_size
        if pins.get(dist[0]) != dist[1]:
            problems.append(f"{wheels} holds {file.name}, which {path.name} does not list; remove it")
        found[dist[0]] = dist[1]
    missing = [f"{name}=={version}" for name, version in pins.items() if found.get(name) != version]
    if missing:
        problems.append(f"{wheels} lacks {', '.join(missing)}; run benchmarks/device_check.sh --fetch-wheels "
                        f"{wheels} on a networked machine first")
    if size > BUNDLE_LIMIT_MB * 1e6:
        problems.append(f"{wheels} holds {size / 1e6:.1f} MB, over the bundle's {BUNDLE_LIMIT_MB} MB")
    return problems


def missing_system_modules() -> list[str]:
    """What the machine must provide besides the bundle and lacks (``SYSTEM_MODULES``' advice)."""
    return [f"{module} ({advice})" for module, advice in SYSTEM_MODULES.items()
            if importlib.util.find_spec(module) is None]


def check_inputs(out: Path, wheels: Path | None) -> list[str]:
    """What is wrong with the check's own inputs (empty: ready)."""
    problems = [f"CUDA source missing: {source}" for source in CUDA_SOURCES if not source.is_file()]
    for name, path in HARNESSES.items():
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up while the class is built
            spec.loader.exec_module(module)
            if not callable(getattr(module, "main", None)):
                problems.append(f"{path.name} has no main()")
        except Exception as exc:  # any failure to import is what the check reports
            problems.append(f"{path.name} does not import: {type(exc).__name__}: {exc}")
    try:
        (out / "objects").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        problems.append(f"output folder {out} is not writable: {exc}")
    return problems + bundle_problems(wheels)


class StepProcess:
    """A step's process: started now, finished (rc, seconds, output tail recorded) by :meth:`finish`."""

    def __init__(self, step: Step, log: Path) -> None:
        self.step = step
        self._log_path = log
        self._start = time.perf_counter()
        self._process: subprocess.Popen[bytes] | None = None
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            try:  # the output goes to a file: a pipe nobody reads would stall a background step
                self._process = subprocess.Popen(step.command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
            except OSError as exc:
                self._finish(127, f"cannot run {step.command[0]}: {exc}")

    def finish(self, left_s: float) -> None:
        """Wait for the process until its own limit (counted from its start) or ``left_s``, whichever is first."""
        if self._process is None:
            return
        limit = max(0.0, min(self.step.timeout_s - (time.perf_counter() - self._start), left_s))
        try:
            rc = self._process.wait(timeout=limit)
            note = ""
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            rc, note = 124, f"\ntimed out after {time.perf_counter() - self._start:.0f} s"
        self._finish(rc, self._log_path.read_text(encoding="utf-8", errors="replace") + note)

    def _finish(self, rc: int, output: str) -> None:
        self._process = None
        self.step.rc, self.step.seconds = rc, round(time.perf_counter() - self._start, 1)
        self.step.output_tail = output.strip().splitlines()[-25:]


def run_steps(steps: list[Step], out: Path, budget_s: float) -> None:
    """Run ``steps`` in order within ``budget_s``: each for at most its limit or what is left of the budget
    (none left: skipped, rc 124); background steps run beside the next ones until a step ``joins`` them."""
    deadline = time.monotonic() + budget_s
    running: dict[str, StepProcess] = {}
    for step in steps:
        if step.joins in running:
            running.pop(step.joins).finish(deadline - time.monotonic())
        left = deadline - time.monotonic()
        if left < 1:
            step.rc, step.seconds, step.output_tail = 124, 0.0, ["skipped: the check's time budget is spent"]
            continue
        print(f"[device-check] {step.name} ...{' (in the background)' if step.background else ''}", flush=True)
        process = StepProcess(step, out / "logs" / f"{step.name}.log")
        if step.background:
            running[step.name] = process
            continue
        process.finish(left)
        print(f"[device-check] {step.name}: {'pass' if step.ok else 'FAIL'} ({step.seconds} s)", flush=True)
    for process in running.values():  # a background step nothing joined
        process.finish(deadline - time.monotonic())


def to_markdown(steps: list[Step], status: str, env: dict[str, str] | None) -> str:
    """The summary as Markdown."""
    lines = ["# Device check", "", f"Status: **{status}**", ""]
    if env:
        lines += ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in env.items()), ""]
    lines += ["| step | result | seconds | details |", "| --- | --- | --- | --- |"]
    for step in steps:
        result = "planned" if step.rc is None else ("pass" if step.ok else f"FAIL (rc {step.rc})")
        details = f"`{step.results}/results.md`" if step.results else ""
        lines.append(f"| {step.name} | {result} | {step.seconds if step.seconds is not None else ''} | {details} |")
    failed = [s for s in steps if s.rc not in (None, 0)]
    for step in failed:
        lines += ["", f"## {step.name} (rc {step.rc})", "", "```", *step.output_tail, "```"]
    if status == "dry run":
        lines += ["", "## Commands", "", *(f"- `{' '.join(s.command)}` (limit {s.timeout_s} s)" for s in steps)]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, steps: list[Step], status: str, env: dict[str, str] | None,
                  problems: list[str]) -> None:
    """``summary.json`` and ``summary.md`` in ``out``."""
    payload = {"status": status, "environment": env, "input_problems": problems,
               "steps": [{**asdict(s), "ok": s.ok} for s in steps]}
    (out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(to_markdown(steps, status, env), encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "device-check", metavar="DIR",
                        help="where summary.json/.md and the steps' results go (default: build/device-check)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and check the inputs; run nothing")
    parser.add_argument("--wheels", type=Path, metavar="DIR",
                        help="offline bundle folder to check against benchmarks/device-requirements.txt (dry run)")
    parser.add_argument("--environment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check-system", action="store_true",
                        help="exit 2 naming what the machine lacks besides the bundle (device_check.sh runs it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run (or plan) the check; see the module docstring for exit codes."""
    args = build_parser().parse_args(argv)
    if args.environment:
        print(json.dumps(environment(), indent=2))
        return 0
    if args.check_system:
        missing = missing_system_modules()
        for module in missing:
            print(f"error: this machine lacks {module}; the offline bundle carries only what a PyTorch + CuPy "
                  f"machine lacks: install it, or add it pinned to {BUNDLE.relative_to(REPO)}", file=sys.stderr)
        return 2 if missing else 0
    out = args.out.resolve()
    problems = check_inputs(out, args.wheels)
    steps = plan_steps(out, sys.executable)
    if args.dry_run or problems:
        status = "dry run" if not problems else "inputs wrong"
        for step in steps:
            where = " in the background" if step.background else ""
            print(f"would run ({step.timeout_s:>3} s max{where}): {' '.join(step.command)}")
        print(f"time budget: {BUDGET_S} s for the steps, after about {PYCUDA_BUILD_S} s for the pycuda build")
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if out.is_dir():
            write_summary(out, steps, status, None, problems)
        print(f"{len(problems)} input problem(s); summary in {out}")
        return 2 if problems else 0
    env = environment()
    run_steps(steps, out, BUDGET_S)
    status = "pass" if all(step.ok for step in steps) else "fail"
    write_summary(out, steps, status, env, problems)
    print(to_markdown(steps, status, env))
    return 0 if status == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
