"""Static checks of the TensorRT-facing Python code (TensorRT itself cannot be installed in CI).

1. mypy (strict) against the ``tensorrt-stubs`` type stubs: every TensorRT name and signature the
   modules use exists. The published stubs have generator defects (parameters named ``in``, a
   required parameter after defaults) that are syntax errors for mypy; the fixture copies them to
   a temporary directory and replaces just those signatures by ``(*args, **kwargs)``.
2. No API that TensorRT 11 removed is used outside a ``hasattr`` guard (``ast`` scan).

Stubs location: ``$FORNET_TENSORRT_STUBS``, else ``<venv>/tensorrt-stubs`` (see docs/tensorrt.md:
``pip install --no-deps --target .venv/tensorrt-stubs tensorrt-stubs==10.13.0.35.1``). Not in
site-packages: the stubs package installs an importable, empty ``tensorrt`` namespace package there.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"export": "export", "runtime": "runtime", "calibration": "calibration", "model": "model"}
OWN_MODULES = {
    *(f"fornet.{pkg}.tensorrt.{p.stem}" for pkg in ("export", "runtime")
      for p in (REPO / pkg / "tensorrt").glob("*.py") if p.stem != "__init__"),
    "fornet.cli.build",
    "fornet.export.tensorrt.plugin_build",
    "fornet.runtime.tensorrt.plugins",
    "fornet.runtime.cuda.context",
    "fornet.runtime.cuda.graph",
    "fornet.runtime.cuda.prepost",
    "fornet.runtime.pipelines",
    "fornet.runtime.segmenter",
}

# Names in TensorRT 10.3's Python bindings that 11.x no longer has (diff of the two versions'
# python/src bindings): precision builder flags, implicit INT8 and its calibrators, algorithm
# selection, the removed layer/tensor precision API and other 10.x deprecations.
REMOVED_IN_11 = frozenset({
    # BuilderFlag members
    "FP16", "BF16", "INT8", "FP8", "FP4", "INT4", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
    "WEIGHTLESS",
    # implicit INT8 calibration
    "IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator",
    "IInt8LegacyCalibrator", "CalibrationAlgoType", "int8_calibrator", "set_calibration_profile",
    "get_calibration_profile", "set_dynamic_range", "get_dynamic_range", "reset_dynamic_range", "dynamic_range",
    "get_tensors_with_dynamic_range",
    # layer precision and output types
    "precision", "precision_is_set", "reset_precision", "set_output_type", "output_type_is_set",
    "reset_output_type",
    # algorithm selection and quantization flags
    "IAlgorithmSelector", "IAlgorithm", "IAlgorithmContext", "algorithm_selector", "QuantizationFlag",
    "set_quantization_flag", "clear_quantization_flag", "get_quantization_flag",
    # other removals
    "EXPLICIT_BATCH", "platform_has_fast_fp16", "platform_has_fast_int8", "platform_has_tf32",
    "device_memory_size", "get_device_memory_size_for_profile", "supports_model", "get_plugin_creator",
    "plugin_creator_list", "create_execution_context_without_device_memory", "weight_streaming_budget",
    "parse_with_weight_descriptors", "IStreamReader",
})


# ---------------------------------------------------------------------------- removed APIs (ast)

def _hasattr_names(test: ast.expr) -> tuple[set[str], set[str]]:
    """Names that ``test`` guarantees present: (when true, when false)."""
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "hasattr":
        name = test.args[1] if len(test.args) == 2 else None
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            return {name.value}, set()
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return set().union(*(_hasattr_names(value)[0] for value in test.values)), set()
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        true, false = _hasattr_names(test.operand)
        return false, true
    return set(), set()


def find_unguarded_uses(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every removed-in-11 name used outside ``if hasattr(..., "name"):``."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    imported = {  # local names bound by `from tensorrt import <removed name> [as alias]`
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tensorrt"
        for alias in node.names
    }

    def visit(node: ast.AST, guarded: frozenset[str]) -> None:
        if isinstance(node, ast.If | ast.IfExp):
            when_true, when_false = _hasattr_names(node.test)
            visit(node.test, guarded)
            body = node.body if isinstance(node.body, list) else [node.body]
            orelse = node.orelse if isinstance(node.orelse, list) else [node.orelse]
            for child in body:
                visit(child, guarded | when_true)
            for child in orelse:
                visit(child, guarded | when_false)
            return
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = imported.get(node.id)
        elif isinstance(node, ast.alias):
            name = node.name
        if name in REMOVED_IN_11 and name not in guarded:
            found.append((getattr(node, "lineno", 0), name))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, frozenset())
    return found


def imports_tensorrt(tree: ast.AST) -> bool:
    """Whether the module imports ``tensorrt`` anywhere (also inside functions)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tensorrt" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tensorrt":
            return True
    return False


def tensorrt_modules() -> dict[str, Path]:
    """Dotted name -> file of every package module that imports tensorrt, plus this task's modules."""
    modules: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.stem == "__init__":
                continue
            dotted = ".".join(("fornet", package, *path.relative_to(REPO / folder).with_suffix("").parts))
            if dotted in OWN_MODULES or imports_tensorrt(ast.parse(path.read_text(encoding="utf-8"))):
                modules[dotted] = path
    return modules


def test_scan_covers_the_tensorrt_modules() -> None:
    modules = tensorrt_modules()
    assert {"fornet.export.tensorrt.build", "fornet.export.tensorrt.calibration_cache",
            "fornet.runtime.tensorrt.plugins"} <= set(modules)
    assert all(imports_tensorrt(ast.parse(modules[m].read_text())) for m in
               ("fornet.export.tensorrt.build", "fornet.runtime.tensorrt.plugins"))


def test_no_removed_api_outside_hasattr_guards() -> None:
    problems = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in [*tensorrt_modules().values(), *sorted((REPO / "benchmarks").glob("*.py"))]
        for line, name in find_unguarded_uses(path.read_text(encoding="utf-8"))
    ]
    assert not problems, ("TensorRT 11 removed these names; use them only inside `if hasattr(obj, \"name\"):` "
                          "(or rename a same-named attribute of your own):\n" + "\n".join(problems))


def test_checker_flags_unguarded_and_accepts_guarded_uses() -> None:
    bad = (
        "config.set_flag(trt.BuilderFlag.FP16)\n"
        "network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))\n"
        "layer.precision = trt.float16\n"
        "from tensorrt import IInt8EntropyCalibrator2 as Calibrator\n"
        "class Mine(Calibrator): pass\n"
        "precision = 'fp16'  # a plain variable of that name is fine\n"
        "if hasattr(config, 'int8_calibrator'):\n"
        "    config.set_flag(trt.BuilderFlag.INT8)  # guarded by another name\n"
        "if not hasattr(trt.BuilderFlag, 'FP16'):\n"
        "    config.set_flag(trt.BuilderFlag.FP16)  # only in the false branch\n"
    )
    assert [name for _, name in find_unguarded_uses(bad)] == [
        "FP16", "EXPLICIT_BATCH", "precision", "IInt8EntropyCalibrator2", "IInt8EntropyCalibrator2", "INT8", "FP16"]
    good = (
        "if hasattr(trt.BuilderFlag, 'INT8') and hasattr(config, 'int8_calibrator'):\n"
        "    config.set_flag(trt.BuilderFlag.INT8)\n"
        "    config.int8_calibrator = calibrator\n"
        "if not hasattr(trt, 'IInt8EntropyCalibrator2'):\n"
        "    raise RuntimeError\n"
        "else:\n"
        "    base = trt.IInt8EntropyCalibrator2\n"
        "size = engine.device_memory_size_v2 if hasattr(engine, 'device_memory_size_v2') else None\n"
    )
    assert find_unguarded_uses(good) == []


# ------------------------------------------------------------------------------ mypy with stubs

_SIGNATURE = re.compile(r"(?P<head>\s*def \w+)\((?P<first>self|cls)?[^)]*\)(?P<tail>\s*->.*:)\s*$")


def stubs_source() -> Path | None:
    """The installed tensorrt-stubs tree (holding tensorrt/ and tensorrt_bindings/), if any."""
    candidates = [os.environ.get("FORNET_TENSORRT_STUBS"), str(Path(sys.prefix) / "tensorrt-stubs")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "tensorrt_bindings" / "tensorrt.pyi").is_file():
            return Path(candidate)
    return None


def repair_stub(text: str) -> str:
    """Replace the signatures Python cannot parse by ``(self, *args: typing.Any, **kwargs: typing.Any)``."""
    lines = text.splitlines(keepends=True)
    while True:
        try:
            ast.parse("".join(lines))
            return "".join(lines)
        except SyntaxError as error:
            index = (error.lineno or 1) - 1
            match = _SIGNATURE.match(lines[index])
            if match is None:
                raise
            first = f"{match['first']}, " if match["first"] else ""
            lines[index] = f"{match['head']}({first}*args: typing.Any, **kwargs: typing.Any){match['tail']}\n"


def mirror_package(root: Path) -> None:
    """``root/fornet`` laid out like the installed package (the editable install's import hook
    is invisible to mypy): links to fornet/*.py and to the mapped sub-package folders."""
    package = root / "fornet"
    package.mkdir(parents=True)
    for path in (REPO / "fornet").glob("*.py"):
        (package / path.name).symlink_to(path)
    for name, folder in PACKAGE_DIRS.items():
        (package / name).symlink_to(REPO / folder, target_is_directory=True)


PROBE = (
    "import tensorrt as trt\n\n"
    "def probe(config: trt.IBuilderConfig) -> None:\n"
    "    config.set_flag(trt.BuilderFlag.NO_SUCH_FLAG)\n"
)

MYPY_CONFIG = """[mypy]
python_version = 3.10
strict = True
warn_unused_ignores = True
follow_imports = silent
cache_dir = {cache}
mypy_path = {stubs}:{package}:{probe}

[mypy-tensorrt.*,tensorrt_bindings.*]
ignore_errors = True

[mypy-tensorrt_libs.*]
ignore_missing_imports = True

# not TensorRT-facing and slow to analyse: treated as Any
[mypy-torch.*,torchvision.*,cv2.*]
follow_imports = skip
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib_util_find("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    source = stubs_source()
    if source is None:
        pytest.skip("tensorrt-stubs not found: pip install --no-deps --target .venv/tensorrt-stubs "
                    "tensorrt-stubs==10.13.0.35.1 (or set FORNET_TENSORRT_STUBS)")
    root = tmp_path_factory.mktemp("mypy")
    stubs = root / "stubs"
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(source / package, stubs / package)
        for stub in (stubs / package).glob("*.pyi"):
            stub.write_text(repair_stub(stub.read_text(encoding="utf-8")), encoding="utf-8")
    mirror_package(root / "package")
    (root / "probe").mkdir()
    (root / "probe" / "fornet_stub_probe.py").write_text(PROBE)
    config = root / "mypy.ini"
    config.write_text(MYPY_CONFIG.format(cache=root / "cache", stubs=stubs, package=root / "package",
                                         probe=root / "probe"))
    modules = ["fornet_stub_probe", *sorted(tensorrt_modules())]
    command = [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary",
               *(arg for module in modules for arg in ("-m", module))]
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
    yield result.stdout + result.stderr


def importlib_util_find(name: str) -> object | None:
    import importlib.util

    return importlib.util.find_spec(name)


def test_mypy_resolves_tensorrt_through_the_stubs(mypy_output: str) -> None:
    # Without effective stubs every TensorRT name is Any and the real check below would pass vacuously.
    assert re.search(r"fornet_stub_probe\.py:4: error: .*has no attribute \"NO_SUCH_FLAG\"", mypy_output), mypy_output


def test_tensorrt_modules_type_check_against_the_stubs(mypy_output: str) -> None:
    errors = [line for line in mypy_output.splitlines() if "error:" in line and "fornet_stub_probe" not in line]
    assert not errors, "mypy errors against tensorrt-stubs:\n" + "\n".join(errors)
