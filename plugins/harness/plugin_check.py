"""``make plugin-check``: the TopKGate plugin run as TensorRT runs it, without TensorRT.

For each set of TensorRT headers found, builds ``libfornet_plugins.so`` without static
registration together with ``fornet_plugin_harness`` (plugins/harness, CMake; cached in
``build/plugin-check/<version>``), then runs the harness over the TopKGate nodes the exporter
writes: every variant's ratio set and channel count, the k of the default export size and its
halvings, float32 and float16 features, static and dynamic batch (each node made by
``fornet.export.onnx_function.make_gate_model``, with the attributes and types the exporter writes;
tests/test_export_graph.py checks those on a real export). Prints one line per TensorRT version with
its check counts.

    python plugins/harness/plugin_check.py                    # headers in ../shared/tensorrt-headers/*
    python plugins/harness/plugin_check.py --headers DIR ...  # or $TENSORRT_INCLUDE_DIRS (':'-separated)
    python plugins/harness/plugin_check.py --device --out build/plugin-harness   # on a GPU machine
    python plugins/harness/plugin_check.py --device --compute-sanitizer memcheck  # the same under memcheck

``--device`` adds the enqueue steps: inputs and NumPy reference outputs
(``fornet.export.topk_gate_reference``) written to ``<build-root>/device-data``, enqueued by the
plugin on device buffers and compared bit for bit. ``--out`` writes ``results.json`` and
``results.md``. Exit status: 0 when every check passed, 1 when one failed, 2 when the inputs are
wrong (no headers, cmake or nvcc: a skip with a message unless ``--strict``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent.parent
PLUGINS = REPO / "plugins"
DEFAULT_HEADER_ROOT = REPO.parent / "shared" / "tensorrt-headers"
DEFAULT_BUILD_ROOT = REPO / "build" / "plugin-check"
HARNESS_NAME = "fornet_plugin_harness"
HEADERS_ENV = "TENSORRT_INCLUDE_DIRS"
#: The CUDA architecture the host checks build for when no GPU says otherwise (Jetson Orin).
DEFAULT_ARCH = "87"
_SUMMARY = re.compile(r"^(?P<headers>.+): (?P<checks>\d+) checks \((?P<host>\d+) host, (?P<device>\d+) device\), "
                      r"(?P<passed>\d+) passed, (?P<failed>\d+) failed$", re.MULTILINE)


@dataclass(frozen=True)
class HeaderSet:
    """One TensorRT ``include/`` folder and the version its NvInferVersion.h states."""

    version: str
    include_dir: Path


@dataclass(frozen=True)
class HarnessBuild:
    """A configured and compiled harness tree."""

    headers: HeaderSet
    build_dir: Path
    library: Path
    harness: Path


@dataclass(frozen=True)
class HarnessRun:
    """One harness run: its exit status, output and the counts of its summary line."""

    headers: HeaderSet
    rc: int
    output: str
    checks: int = 0
    host: int = 0
    device: int = 0
    passed: int = 0
    failed: int = 0

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return self.rc == 0 and self.failed == 0 and self.checks > 0


@dataclass(frozen=True)
class GateCase:
    """One TopKGate node for the harness (and, with data, a device case)."""

    name: str
    dtype: str  # "float32" | "float16"
    batch: int  # -1: dynamic, see profile
    channels: int
    grid: tuple[int, int]
    ratios: tuple[float, ...]
    ks: tuple[int, ...]
    profile: tuple[int, int, int] = (1, 1, 1)
    scores: str = ""  # device cases: the score kind of gate_kernel_harness.make_scores
    seed: int = 0


class PluginCheckError(Exception):
    """The check cannot run here (missing headers, cmake, nvcc) or its build failed."""


# ------------------------------------------------------------------------------------- headers

def tensorrt_version(include_dir: Path) -> str:
    """``major.minor.patch`` from ``NvInferVersion.h`` (10.x spells it through TRT_*_ENTERPRISE macros)."""
    text = (include_dir / "NvInferVersion.h").read_text(encoding="utf-8", errors="replace")
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        found = (re.search(rf"#define\s+TRT_{part}_ENTERPRISE\s+(\d+)", text)
                 or re.search(rf"#define\s+NV_TENSORRT_{part}\s+(\d+)", text))
        if found is None:
            raise PluginCheckError(f"{include_dir / 'NvInferVersion.h'} states no TensorRT {part.lower()} version")
        parts.append(found.group(1))
    return ".".join(parts)


def include_dir_of(folder: Path) -> Path | None:
    """``folder/include`` or ``folder`` itself, whichever holds ``NvInferRuntime.h``."""
    for candidate in (folder / "include", folder):
        if (candidate / "NvInferRuntime.h").is_file() and (candidate / "NvInferVersion.h").is_file():
            return candidate
    return None


def header_sets(explicit: Sequence[Path] = ()) -> list[HeaderSet]:
    """The header sets to check: ``explicit``, else ``$TENSORRT_INCLUDE_DIRS``, else every folder of
    ``../shared/tensorrt-headers`` beside the checkout; ordered by version."""
    env = os.environ.get(HEADERS_ENV, "")
    if explicit:
        folders = list(explicit)
    elif env.strip():
        folders = [Path(part) for part in env.split(os.pathsep) if part.strip()]
    else:
        folders = sorted(p for p in DEFAULT_HEADER_ROOT.glob("*") if p.is_dir()) if DEFAULT_HEADER_ROOT.is_dir() else []
    found = []
    for folder in folders:
        include = include_dir_of(folder)
        if include is None:
            if explicit or env.strip():
                raise PluginCheckError(f"{folder} holds no TensorRT headers (NvInferRuntime.h, NvInferVersion.h)")
            continue
        found.append(HeaderSet(tensorrt_version(include), include.resolve()))
    return sorted(found, key=lambda h: tuple(int(p) for p in h.version.split(".")))


# --------------------------------------------------------------------------------------- cases

def export_sizes() -> list[tuple[int, int]]:
    """The exporter's default input size and its halvings down to an eighth."""
    from fornet.export.api import ExportOptions

    height, width = ExportOptions().input_size
    return [(height // f, width // f) for f in (1, 2, 4, 8)]


def exporter_cases() -> list[GateCase]:
    """Every distinct TopKGate node the exporter writes for the variants at :func:`export_sizes`:
    (ratios, channels, grid) from the model configurations, k from ``topk_counts``; float32 nodes with
    a static batch of 1 (``fornet.onnx``), float16 nodes with a dynamic batch (``fornet_fp16.onnx``,
    ``--dynamic-batch``). Plus two nodes at the contract's limits (R = 1 and R = 8)."""
    from fornet.model import topk_counts
    from fornet.model.config import VARIANTS

    cases: dict[tuple[object, ...], GateCase] = {}
    for variant, config in VARIANTS.items():
        stride = config.output_stride
        for height, width in export_sizes():
            grid = (height // stride, width // stride)
            ks = topk_counts(grid[0] * grid[1], config.ratios)
            for dtype, batch, profile in (("float32", 1, (1, 1, 1)), ("float16", -1, (1, 2, 4))):
                key = (config.ratios, config.channels, grid, dtype)
                cases.setdefault(key, GateCase(f"{variant}-{height}x{width}-{dtype}", dtype, batch, config.channels,
                                               grid, tuple(config.ratios), ks, profile))
    limits = [GateCase("contract-r1", "float32", 1, 8, (8, 16), (0.5,), (64,)),
              GateCase("contract-r8", "float16", -1, 8, (16, 32), tuple(i / 8 for i in range(1, 9)),
                       tuple(64 * i for i in range(1, 9)), (1, 3, 8))]
    return [*cases.values(), *limits]


def device_cases() -> list[GateCase]:
    """GPU cases: Cityscapes' largest grid (128x256, k up to 13,107; 16 channels, as selection does not
    depend on them) with normal, tied and NaN/+-0/+-inf scores in both types; the lite model's own 128
    channels; and R = 8."""
    from fornet.model import topk_counts
    from fornet.model.config import REFERENCE_RATIOS

    big = (128, 256)
    cases = [GateCase(f"device-128x256-{dtype}-{kind}", dtype, 2, 16, big, REFERENCE_RATIOS,
                      topk_counts(big[0] * big[1], REFERENCE_RATIOS), (2, 2, 2), kind, seed)
             for seed, (dtype, kind) in enumerate((d, k) for d in ("float32", "float16")
                                                  for k in ("normal", "ties", "special"))]
    lite = (64, 128)
    cases.append(GateCase("device-lite-64x128-float16", "float16", 3, 128, lite, REFERENCE_RATIOS,
                          topk_counts(lite[0] * lite[1], REFERENCE_RATIOS), (3, 3, 3), "ties", 11))
    ratios8 = tuple(i / 8 for i in range(1, 9))
    cases.append(GateCase("device-r8-16x32-float32", "float32", 2, 8, (16, 32), ratios8,
                          topk_counts(16 * 32, ratios8), (2, 2, 2), "special", 12))
    return cases


def node_attributes(case: GateCase) -> list[tuple[str, str, list[str]]]:
    """The TopKGate node's attributes as the exporter writes them: (name, ONNX type, values)."""
    from onnx import AttributeProto, TensorProto, helper

    from fornet.export.onnx_function import make_gate_model

    elem = TensorProto.FLOAT16 if case.dtype == "float16" else TensorProto.FLOAT
    model = make_gate_model(case.ratios, case.ks, (max(case.batch, 1), case.channels, *case.grid), elem)
    node = next(n for n in model.graph.node if n.op_type == "TopKGate")
    type_names = {AttributeProto.FLOAT: "FLOAT", AttributeProto.INT: "INT", AttributeProto.STRING: "STRING",
                  AttributeProto.FLOATS: "FLOATS", AttributeProto.INTS: "INTS"}
    attributes = []
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values = value if isinstance(value, list) else [value]
        text = [v.decode() if isinstance(v, bytes) else repr(v) for v in values]
        attributes.append((attribute.name, type_names[attribute.type], text))
    return attributes


def write_cases(path: Path, cases: Iterable[GateCase], data_dirs: dict[str, Path] | None = None) -> Path:
    """The harness's case file (format: plugins/harness/cases.h)."""
    from fornet.contract import TOPK_GATE

    lines = ["# written by plugins/harness/plugin_check.py from the exporter's own code",
             f"creator {TOPK_GATE.name} {TOPK_GATE.plugin_version} {TOPK_GATE.plugin_namespace}"]
    for case in cases:
        lines += [f"case {case.name}", f"features {case.dtype} {case.batch} {case.channels} {case.grid[0]} "
                                       f"{case.grid[1]}", "profile {} {} {}".format(*case.profile)]
        lines += [f"attr {name} {kind} {' '.join(values)}" for name, kind, values in node_attributes(case)]
        if data_dirs and case.name in data_dirs:
            lines.append(f"data {data_dirs[case.name]}")
        lines.append("end")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _gate_kernel_harness() -> ModuleType:
    """benchmarks/gate_kernel_harness.py (its score generator), imported by path."""
    name = "gate_kernel_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "gate_kernel_harness.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def write_device_data(root: Path, cases: Iterable[GateCase]) -> dict[str, Path]:
    """Inputs and NumPy reference outputs of each device case, as raw arrays the harness reads."""
    import numpy as np

    from fornet.export.topk_gate_reference import topk_gate_reference

    make_scores = _gate_kernel_harness().make_scores
    folders = {}
    for case in cases:
        folder = root / case.name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(case.seed)
        features = rng.standard_normal((case.batch, case.channels, *case.grid)).astype(case.dtype)
        scores = make_scores(case.scores, case.batch, case.grid, case.seed)
        gated, masks = topk_gate_reference(features, scores, case.ks)
        features.tofile(folder / "features.bin")
        scores.astype(np.float32).tofile(folder / "scores.bin")
        for i, output in enumerate(gated):
            output.astype(case.dtype).tofile(folder / f"gated_{i}.bin")
        masks.astype(np.float32).tofile(folder / "masks.bin")
        folders[case.name] = folder
    return folders


# --------------------------------------------------------------------------------- build, run

def find_cmake() -> str | None:
    """``cmake`` beside this Python (a venv's pip-installed cmake) or on PATH."""
    beside = Path(sys.executable).parent / "cmake"
    return str(beside) if beside.is_file() else shutil.which("cmake")


def gpu_arch() -> str | None:
    """Compute capability of GPU 0 without the dot (nvidia-smi), or None."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    done = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True,
                          check=False)
    first = done.stdout.strip().splitlines()[:1]
    return first[0].replace(".", "") if done.returncode == 0 and first and first[0].replace(".", "").isdigit() else None


def build_harness(headers: HeaderSet, build_root: Path = DEFAULT_BUILD_ROOT, *, cuda_arch: str = DEFAULT_ARCH,
                  source: Path = PLUGINS, cmake_args: Sequence[str] = (), tag: str = "",
                  verbose: bool = False) -> HarnessBuild:
    """Configure and compile the getCreators-only library and the harness against ``headers`` in
    ``build_root/<version><tag>`` (incremental: a second call with nothing changed compiles nothing)."""
    from fornet.export.tensorrt.plugin_build import PluginBuild, PluginBuildError, run_cmake
    from fornet.runtime.cuda.toolchain import find_nvcc

    cmake = find_cmake()
    if cmake is None:
        raise PluginCheckError("cmake not found (PATH or beside this Python); install it (`apt install cmake` or "
                               "`pip install cmake`)")
    build = PluginBuild(source=source, out_dir=build_root / f"{headers.version}{tag}",
                        tensorrt_root=headers.include_dir, cuda_archs=(cuda_arch,), static_registration=False,
                        nvcc=find_nvcc(), harness=True, cmake_args=tuple(cmake_args))
    try:
        library = run_cmake(build, verbose=verbose, cmake=cmake)
    except PluginBuildError as exc:
        raise PluginCheckError(f"building the harness against TensorRT {headers.version} failed: {exc}") from exc
    return HarnessBuild(headers, build.build_dir, library, build.build_dir / "harness" / HARNESS_NAME)


def run_harness(build: HarnessBuild, cases_file: Path, *, library: Path | None = None, device: bool = False,
                report: Path | None = None, verbose: bool = False, env: dict[str, str] | None = None,
                wrapper: Sequence[str] = (), timeout_s: float = 600) -> HarnessRun:
    """Run the harness (on ``library``, default the build's own) and read its summary line."""
    command = [*wrapper, str(build.harness), "--library", str(library or build.library), "--cases", str(cases_file)]
    command += ["--device"] * device + (["--report", str(report)] if report else []) + ["--verbose"] * verbose
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=timeout_s)
    output = done.stdout + done.stderr
    found = list(_SUMMARY.finditer(done.stdout))
    if not found:
        return HarnessRun(build.headers, done.returncode, output)
    counts = {k: int(v) for k, v in found[-1].groupdict().items() if k != "headers"}
    return HarnessRun(build.headers, done.returncode, output, **counts)


def summary_line(run: HarnessRun) -> str:
    """``TensorRT 10.3.0 headers: 250 checks (250 host, 0 device), 250 passed, 0 failed``."""
    if run.checks == 0:
        return f"TensorRT {run.headers.version} headers: the harness gave no summary (exit {run.rc})"
    return (f"TensorRT {run.headers.version} headers: {run.checks} checks ({run.host} host, {run.device} device), "
            f"{run.passed} passed, {run.failed} failed")


def write_results(out: Path, runs: list[HarnessRun], reports: dict[str, Path]) -> None:
    """``results.json`` (every check of every version) and ``results.md`` (the counts)."""
    out.mkdir(parents=True, exist_ok=True)
    payload = []
    for run in runs:
        entry = {**asdict(run.headers), "include_dir": str(run.headers.include_dir), "rc": run.rc,
                 "checks": run.checks, "host": run.host, "device": run.device, "passed": run.passed,
                 "failed": run.failed}
        path = reports.get(run.headers.version)
        if path is not None and path.is_file():
            entry["results"] = json.loads(path.read_text(encoding="utf-8"))["checks"]
        payload.append(entry)
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    lines = ["# TopKGate plugin conformance harness", "", "| TensorRT headers | checks | host | device | passed | "
             "failed |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.headers.version} | {r.checks} | {r.host} | {r.device} | {r.passed} | {r.failed} |" for r in runs]
    failed = [line for r in runs for line in r.output.splitlines() if line.startswith("FAIL")]
    if failed:
        lines += ["", "## Failed checks", "", *(f"- {line}" for line in failed)]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------- main

def sanitizer_command(tool: str) -> list[str]:
    """``compute-sanitizer --tool TOOL ...`` (PATH, else beside nvcc); errors make the run fail."""
    from fornet.runtime.cuda.toolchain import find_nvcc

    nvcc = find_nvcc()
    beside = nvcc.resolve().parent / "compute-sanitizer" if nvcc is not None else None
    found = shutil.which("compute-sanitizer") or (str(beside) if beside is not None and beside.is_file() else None)
    if found is None:
        raise PluginCheckError("compute-sanitizer not found (PATH or beside nvcc); it ships with the CUDA toolkit")
    leaks = ["--leak-check", "full"] if tool == "memcheck" else []
    return [found, "--tool", tool, *leaks, "--error-exitcode", "1"]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--headers", type=Path, action="append", default=[], metavar="DIR",
                        help=f"a TensorRT include folder (repeatable; default ${HEADERS_ENV}, else "
                             f"../shared/tensorrt-headers/*)")
    parser.add_argument("--build-root", type=Path, default=DEFAULT_BUILD_ROOT, metavar="DIR",
                        help="where the builds are cached (default: build/plugin-check)")
    parser.add_argument("--cuda-arch", metavar="N", help=f"CUDA architecture (default: this GPU's, else "
                                                          f"{DEFAULT_ARCH})")
    parser.add_argument("--device", action="store_true", help="also run the enqueue steps on the GPU")
    parser.add_argument("--compute-sanitizer", metavar="TOOL", choices=("memcheck", "racecheck", "initcheck",
                                                                        "synccheck"),
                        help="run the harness under compute-sanitizer --tool TOOL (with --device; memcheck also "
                             "checks device memory leaks)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write results.json and results.md here")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 2) instead of skipping when headers, cmake or nvcc are missing (CI)")
    parser.add_argument("--verbose", action="store_true", help="print every check and CMake's output")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build and run the harness for each header set; see the module docstring for exit codes."""
    args = build_parser().parse_args(argv)
    from fornet.runtime.cuda.toolchain import find_nvcc

    try:
        sets = header_sets(args.headers)
        missing = [what for what, ok in (("TensorRT headers", bool(sets)), ("cmake", find_cmake() is not None),
                                         ("nvcc", find_nvcc() is not None)) if not ok]
        if missing:
            raise PluginCheckError(f"plugin-check needs {', '.join(missing)}: none found (headers: --headers, "
                                   f"${HEADERS_ENV} or {DEFAULT_HEADER_ROOT}/<version>; cmake and nvcc on PATH)")
        wrapper = sanitizer_command(args.compute_sanitizer) if args.compute_sanitizer else []
        arch = args.cuda_arch or gpu_arch() or DEFAULT_ARCH
        cases_file = write_cases(args.build_root / "cases.txt", exporter_cases())
        if args.device:
            device = device_cases()
            data = write_device_data(args.build_root / "device-data", device)
            cases_file = write_cases(args.build_root / "cases-device.txt", [*exporter_cases(), *device], data)
        runs, reports = [], {}
        for headers in sets:
            build = build_harness(headers, args.build_root, cuda_arch=arch, verbose=args.verbose)
            reports[headers.version] = build.build_dir.parent / "results.json"
            run = run_harness(build, cases_file, device=args.device, report=reports[headers.version],
                              verbose=args.verbose, wrapper=wrapper)
            if run.rc != 0 and run.failed == 0:  # a sanitizer's finding, or a crash: show its report
                print(run.output[-3000:])
            failures = [line for line in run.output.splitlines() if line.startswith(("FAIL", "error"))]
            if failures:
                print("\n".join(failures))
            print(f"plugin-check: {summary_line(run)}", flush=True)
            runs.append(run)
    except PluginCheckError as exc:
        print(f"plugin-check: {'error' if args.strict else 'skipped'}: {exc}", file=sys.stderr)
        return 2 if args.strict else 0
    if args.out is not None:
        write_results(args.out, runs, reports)
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
