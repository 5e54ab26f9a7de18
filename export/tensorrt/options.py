"""Engine build options and the equivalent command lines (pure: no TensorRT, no GPU).

:class:`BuildOptions` is the single description of a build and declares its ``fornet build``
flags; :func:`fornet.export.tensorrt.build.build_engine` applies it, and
:func:`engine_build_command` / :func:`trtexec_build_command` print what to run on the target.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fornet.export.tensorrt.errors import TensorRTBuildError
from fornet.export.tensorrt.onnx_summary import inspect_onnx
from fornet.options import OptionGroup, option, positive_int_arg, to_argv
from fornet.runtime.tensorrt.plan_metadata import BuildSettings
from fornet.runtime.tensorrt.plugins import PLUGIN_LIBRARY_NAME, PluginLibraryError, find_plugin_library

HARDWARE_COMPAT_LEVELS = ("none", "ampere+")
DEFAULT_BATCH_RANGE = (1, 1, 4)
BUILDER = OptionGroup("builder")
PROFILE = OptionGroup("optimisation profile (ONNX exported with --dynamic-batch)")
COMPAT = OptionGroup("compatibility")


class BuildOptionsError(TensorRTBuildError):
    """Build options that contradict each other or TensorRT's limits."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build one engine. ``None`` means TensorRT's default.

    Attributes:
        plugin: plugin library to load (default: searched, only when the graph has a TopKGate node).
        workspace_mib: workspace memory pool limit in MiB.
        opt_level: builder optimisation level 0-5 (TensorRT's default is 3).
        timing_cache: timing cache file, read if present and rewritten after the build.
        min_batch, opt_batch, max_batch: optimisation profile of a dynamic batch dimension
            (defaults 1, 1, 4; a graph with a fixed batch takes none).
        version_compatible: ``BuilderFlag.VERSION_COMPATIBLE`` (a 10.x plan also runs on 11.x).
        hardware_compat: ``"none"`` or ``"ampere+"`` (one plan for every Ampere-or-newer GPU).
        legacy_int8_cache: TensorRT 10.x only: implicit INT8 (``BuilderFlag.INT8``) from this
            ``TRT-<version>-EntropyCalibration2`` cache, applied to an FP32 graph.
        verbose: print TensorRT's verbose log.
    """

    plugin: Path | None = option(None, flag="--plugin", parse=Path, metavar="LIB",
                                 default_text="$FORNET_PLUGIN_LIB, build/plugins/, /usr/local/lib, ...; loaded only "
                                              "when the graph has a TopKGate node",
                                 help="plugin library")
    workspace_mib: int | None = option(None, flag="--workspace", parse=int, metavar="MiB", group=BUILDER,
                                       help="workspace memory pool limit in MiB")
    opt_level: int | None = option(None, flag="--opt-level", parse=int, metavar="N", choices=range(6), group=BUILDER,
                                   help="builder optimisation level 0-5 (TensorRT default: 3; higher builds slower)")
    timing_cache: Path | None = option(None, flag="--timing-cache", parse=Path, metavar="FILE", group=BUILDER,
                                       help="persistent timing cache: read if present, updated after the build")
    min_batch: int | None = option(None, flag="--min-batch", parse=int, metavar="N", group=PROFILE,
                                   default_text=str(DEFAULT_BATCH_RANGE[0]), help="min batch")
    opt_batch: int | None = option(None, flag="--opt-batch", parse=int, metavar="N", group=PROFILE,
                                   default_text=str(DEFAULT_BATCH_RANGE[1]), help="opt batch")
    max_batch: int | None = option(None, flag="--max-batch", parse=positive_int_arg, metavar="N", group=PROFILE,
                                   default_text=str(DEFAULT_BATCH_RANGE[2]), help="max batch")
    version_compatible: bool = option(False, flag="--version-compatible", group=COMPAT,
                                      help="version-compatible plan (a 10.x plan also runs on later TensorRT "
                                           "runtimes)")
    hardware_compat: str = option("none", flag="--hardware-compat", choices=HARDWARE_COMPAT_LEVELS, group=COMPAT,
                                  help="ampere+: one plan for every Ampere or newer GPU (not Jetson-specific "
                                       "tuning)")
    legacy_int8_cache: Path | None = option(None, flag="--legacy-int8-cache", parse=Path, metavar="FILE",
                                            group=COMPAT,
                                            help="TensorRT 10.x only: implicit INT8 of fornet.onnx from a "
                                                 "TRT-<ver>-EntropyCalibration2 cache (TensorRT 11 removed it: "
                                                 "build fornet_int8.onnx instead)")
    verbose: bool = option(False, flag="--verbose", help="print TensorRT's verbose log", group=BUILDER)

    def __post_init__(self) -> None:
        for name in ("plugin", "timing_cache", "legacy_int8_cache"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise BuildOptionsError(f"workspace must be at least 1 MiB, got {self.workspace_mib}")
        if self.opt_level is not None and not 0 <= self.opt_level <= 5:
            raise BuildOptionsError(f"builder optimisation level must be 0..5, got {self.opt_level}")
        if self.hardware_compat not in HARDWARE_COMPAT_LEVELS:
            raise BuildOptionsError(
                f"hardware compatibility must be one of {', '.join(HARDWARE_COMPAT_LEVELS)}, "
                f"got {self.hardware_compat!r}"
            )
        low, opt, high = self.batch_range()
        if not 1 <= low <= opt <= high:
            raise BuildOptionsError(
                f"batch profile needs 1 <= min <= opt <= max, got min={low} opt={opt} max={high}; "
                "fix --min-batch/--opt-batch/--max-batch"
            )

    @property
    def batch_given(self) -> bool:
        """Whether any batch bound was set explicitly."""
        return any(value is not None for value in (self.min_batch, self.opt_batch, self.max_batch))

    def batch_range(self) -> tuple[int, int, int]:
        """``(min, opt, max)`` batch, filling unset bounds from the set ones and the defaults."""
        low = self.min_batch if self.min_batch is not None else DEFAULT_BATCH_RANGE[0]
        opt = self.opt_batch if self.opt_batch is not None else low
        high = self.max_batch if self.max_batch is not None else max(opt, DEFAULT_BATCH_RANGE[2])
        return low, opt, high

    def as_record(self) -> BuildSettings:
        """These options as the plan's sidecar records them (paths as strings)."""
        values: dict[str, Any] = {
            field.name: str(value) if isinstance(value, Path) else value
            for field in fields(self)
            if (value := getattr(self, field.name)) is not None
        }
        return BuildSettings(**values)


def default_plan_path(onnx_path: str | os.PathLike[str]) -> Path:
    """``fornet_fp16.onnx`` -> ``fornet_fp16.plan`` beside it."""
    return Path(onnx_path).with_suffix(".plan")


def _join(argv: list[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in argv)


def engine_build_command(onnx_path: str | os.PathLike[str], plan_path: str | os.PathLike[str] | None = None,
                         options: BuildOptions | None = None) -> str:
    """The exact ``fornet-build`` command that builds ``plan_path`` from ``onnx_path`` with ``options`` on the target.

    Options left at their defaults are left out of the command.
    """
    argv = ["fornet-build", "--onnx", str(onnx_path)]
    if plan_path is not None:
        argv += ["--out", str(plan_path)]
    return _join(argv + to_argv(options or BuildOptions()))


def trtexec_build_command(onnx_path: str | os.PathLike[str], plan_path: str | os.PathLike[str] | None = None,
                          options: BuildOptions | None = None) -> str:
    """The ``trtexec`` command equivalent to :func:`engine_build_command` (same options).

    Reads the ONNX inputs to spell the optimisation profile when the batch is dynamic. The
    plugin library (when not given: the one found here, else ``build/plugins/`` of a checkout) is
    passed with ``--staticPlugins``, which needs the default static registration.
    """
    opts = options or BuildOptions()
    summary = inspect_onnx(onnx_path)
    plan = Path(plan_path) if plan_path is not None else default_plan_path(onnx_path)
    argv = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={plan}", "--skipInference"]
    if opts.legacy_int8_cache is not None:
        argv += ["--int8", f"--calib={opts.legacy_int8_cache}"]
    else:
        argv.append("--stronglyTyped")
    if summary.needs_plugin or opts.plugin is not None:
        argv.append(f"--staticPlugins={opts.plugin or _plugin_for_command()}")
    if opts.workspace_mib is not None:
        argv.append(f"--memPoolSize=workspace:{opts.workspace_mib}M")
    if opts.opt_level is not None:
        argv.append(f"--builderOptimizationLevel={opts.opt_level}")
    if opts.timing_cache is not None:
        argv.append(f"--timingCacheFile={opts.timing_cache}")
    dynamic = [item for item in summary.inputs if item.shape and item.shape[0] is None]
    if dynamic:
        for flag, batch in zip(("--minShapes", "--optShapes", "--maxShapes"), opts.batch_range(), strict=True):
            argv.append(f"{flag}=" + ",".join(_shape_spec(item.name, batch, item.shape) for item in dynamic))
    if opts.version_compatible:
        argv.append("--versionCompatible")
    if opts.hardware_compat != "none":
        argv.append(f"--hardwareCompatibilityLevel={opts.hardware_compat}")
    argv.append("--profilingVerbosity=detailed")
    if opts.verbose:
        argv.append("--verbose")
    return _join(argv)


def _plugin_for_command() -> Path:
    """The library found on this machine, else where `fornet-build-plugin` puts it in a checkout."""
    try:
        return find_plugin_library()
    except PluginLibraryError:
        return Path("build") / "plugins" / PLUGIN_LIBRARY_NAME


def _shape_spec(name: str, batch: int, shape: tuple[int | None, ...]) -> str:
    rest = shape[1:]
    if any(dim is None for dim in rest):
        raise BuildOptionsError(
            f"input {name!r} has dynamic dimensions besides the batch ({shape}); TensorRT needs a fixed "
            "size: re-export the ONNX for one input size (`fornet-export --input-size HxW`)"
        )
    return f"{name}:" + "x".join(str(dim) for dim in (batch, *rest))
