"""Build TensorRT engines from the exported ONNX files (TensorRT 10.3 ... 11.x).

One precision path for every supported TensorRT: ``fornet.onnx`` (FP32), ``fornet_fp16.onnx``
(FP16 with the selector and Top-K in FP32) and ``fornet_int8.onnx`` (Q/DQ) are built as
*strongly typed* networks with no precision flags: the graph decides every layer's precision.
The one exception is the legacy 10.x implicit-INT8 path (``legacy_int8_cache``), see
:mod:`fornet.export.tensorrt.calibration_cache`.

Stable API (used by ``fornet-export``): :func:`tensorrt_available`, :func:`build_engine`,
:func:`engine_build_command` (plus :func:`trtexec_build_command`). TensorRT is imported only
inside the functions that need it; each missing piece (TensorRT, GPU, plugin library) is a
:class:`~fornet.errors.FornetError` naming the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from fornet import __version__
from fornet.atomic import write_bytes_atomic
from fornet.contract import TOPK_GATE
from fornet.export.tensorrt.calibration_cache import (
    CalibrationCache,
    check_cache_version,
    read_calibration_cache,
)
from fornet.export.tensorrt.errors import TensorRTBuildError
from fornet.export.tensorrt.graph_rules import uint8_violations
from fornet.export.tensorrt.legacy_int8 import enable_legacy_int8, require_legacy_int8
from fornet.export.tensorrt.onnx_summary import OnnxSummary, inspect_onnx
from fornet.export.tensorrt.options import (
    BuildOptions,
    BuildOptionsError,
    default_plan_path,
    engine_build_command,
    trtexec_build_command,
)
from fornet.hashing import sha256_file
from fornet.records import FileDigest
from fornet.runtime.cuda.device import cuda_device
from fornet.runtime.tensorrt.env import (
    LogTail,
    make_logger,
    require_tensorrt,
    tensorrt_available,
    tensorrt_version_number,
)
from fornet.runtime.tensorrt.plan_metadata import (
    CalibrationCacheInfo,
    EngineMetadata,
    GpuInfo,
    PluginInfo,
    ShapeProfile,
    TensorRecord,
    metadata_path,
)
from fornet.runtime.tensorrt.plugins import load_plugin_library

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = [
    "BuildOptions",
    "EngineBuildError",
    "OnnxParseError",
    "build_engine",
    "engine_build_command",
    "tensorrt_available",
    "trtexec_build_command",
]

_MIB = 1 << 20


class OnnxParseError(TensorRTBuildError):
    """TensorRT's ONNX parser rejected the graph."""


class EngineBuildError(TensorRTBuildError):
    """TensorRT could not build the engine."""


def build_engine(onnx_path: str | os.PathLike[str], plan_path: str | os.PathLike[str] | None = None,
                 options: BuildOptions | None = None) -> Path:
    """Build a TensorRT plan from ``onnx_path`` on this machine's GPU.

    Args:
        onnx_path: an exported ONNX file (``fornet.onnx``, ``fornet_fp16.onnx``, ``fornet_int8.onnx``).
        plan_path: output plan (default: the ONNX path with suffix ``.plan``). ``<plan>.json``
            records how it was built.
        options: how to build (:class:`~fornet.export.tensorrt.options.BuildOptions`; default:
            TensorRT's defaults, the plugin searched when the graph needs it).

    Returns:
        The plan path.

    Raises:
        FornetError: bad options or ONNX, no TensorRT, no GPU, missing plugin library, parser
            errors (node by node) or a failed build (with TensorRT's last log lines).
    """
    opts = options or BuildOptions()
    summary = inspect_onnx(onnx_path)
    plan = Path(plan_path) if plan_path is not None else default_plan_path(onnx_path)
    cache = _legacy_cache(opts, summary)
    _check_parser_rules(summary)
    version = require_tensorrt()
    import tensorrt as trt

    device = cuda_device()
    if cache is not None:
        require_legacy_int8()
        check_cache_version(cache, tensorrt_version_number(version))
    plugin = load_plugin_library(opts.plugin) if summary.needs_plugin or opts.plugin is not None else None

    tail = LogTail()
    logger = make_logger(tail, verbose=opts.verbose)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    strongly_typed = cache is None
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not _parse(parser, summary):
        raise OnnxParseError(f"TensorRT {version} cannot parse {summary.path}:\n{_parser_errors(parser)}\n"
                             f"{_parse_hint(summary)}")

    config = builder.create_builder_config()
    inputs, profile = _configure(builder, network, config, opts)
    serialized_plugins = _serialize_plugins(config, parser, plugin) if opts.version_compatible else False
    calibrator = enable_legacy_int8(config, cache, profile) if cache is not None else None
    if opts.timing_cache is not None:
        _use_timing_cache(config, opts.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            f"TensorRT {version} failed to build an engine from {summary.path}; last log lines:\n{tail.text()}\n"
            "fix the cause above (a larger --workspace, another --opt-level, a supported graph), or rerun "
            "with --verbose"
        )
    del calibrator  # TensorRT no longer calls it
    data = bytes(memoryview(serialized))
    write_bytes_atomic(plan, data)
    if opts.timing_cache is not None:
        write_bytes_atomic(opts.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    EngineMetadata(
        fornet_deploy_version=__version__,
        plan=FileDigest(plan.name, sha256_file(plan)),
        tensorrt_version=version,
        gpu=GpuInfo(device.name, ".".join(map(str, device.compute_capability))),
        built_precision=summary.graph_precision if cache is None else "int8-legacy-calibration",
        strongly_typed=strongly_typed,
        source_onnx=FileDigest(summary.path.name, summary.sha256),
        inputs=tuple(inputs),
        outputs=tuple(_tensor_record(network.get_output(i)) for i in range(network.num_outputs)),
        build_options=opts.as_record(),
        plugin=None if plugin is None else PluginInfo(plugin.name, sha256_file(plugin), TOPK_GATE.creator,
                                                      serialized_in_plan=serialized_plugins),
        calibration_cache=None if cache is None else CalibrationCacheInfo(cache.path.name, sha256_file(cache.path),
                                                                          cache.tensorrt_version),
        fornet_build_command=engine_build_command(onnx_path, plan, opts),
    ).save(metadata_path(plan))
    return plan


def _parse(parser: trt.OnnxParser, summary: OnnxSummary) -> bool:
    """Parse the graph; without its model-local ``fornet.TopKGate`` function, if it has one.

    Parsers before TensorRT 10.7 expand a local function instead of using the plugin of the same
    name (and its TopK would exceed k <= 3840); with the plugin loaded the function is never needed.
    """
    if not summary.gate_function:
        return parser.parse_from_file(str(summary.path))
    import onnx

    from fornet.export.onnx_function import strip_gate_function

    model = strip_gate_function(onnx.load(str(summary.path), load_external_data=False))
    return parser.parse(model.SerializeToString(), path=str(summary.path))  # path: external weights


def _check_parser_rules(summary: OnnxSummary) -> None:
    """Refuse, before TensorRT is touched, a graph its ONNX parser would reject for UINT8 tensors."""
    import onnx

    problems = uint8_violations(onnx.load(str(summary.path), load_external_data=False))
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems)
        raise OnnxParseError(f"TensorRT's ONNX parser takes UINT8 only as a network input or output next to a Cast; "
                             f"{summary.path} has:\n{listed}\nre-export it with this fornet-export (it casts a raw "
                             "uint8 input first)")


def _serialize_plugins(config: trt.IBuilderConfig, parser: trt.OnnxParser, plugin: Path | None) -> bool:
    """Serialise the plugin libraries into a version-compatible plan; True when there were any.

    A version-compatible plan runs in the lean runtime embedded in it, whose plugin registry is
    its own: the libraries must travel in the plan (``plugins_to_serialize``) or be loaded into
    that runtime's registry before deserialising (``OnnxParser.get_used_vc_plugin_libraries``,
    TensorRT 10.x ``NvOnnxParser.h``). The runtime then needs ``engine_host_code_allowed``.
    """
    libraries = [*([] if plugin is None else [str(plugin)]), *parser.get_used_vc_plugin_libraries()]
    config.plugins_to_serialize = libraries
    return bool(libraries)


def _legacy_cache(opts: BuildOptions, summary: OnnxSummary) -> CalibrationCache | None:
    if opts.legacy_int8_cache is None:
        return None
    if summary.graph_precision != "fp32":
        raise BuildOptionsError(
            f"--legacy-int8-cache calibrates an FP32 graph, but {summary.path.name} is {summary.graph_precision}; "
            "pass fornet.onnx, or build fornet_int8.onnx / fornet_fp16.onnx without --legacy-int8-cache"
        )
    return read_calibration_cache(opts.legacy_int8_cache)


def _configure(builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig,
               opts: BuildOptions) -> tuple[list[TensorRecord], trt.IOptimizationProfile | None]:
    """Apply ``opts`` to ``config``; return the input records and the profile of a dynamic batch."""
    import tensorrt as trt

    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions for describe_engine
    if opts.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib * _MIB)
    if opts.opt_level is not None:
        config.builder_optimization_level = opts.opt_level
    if opts.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if opts.hardware_compat == "ampere+":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    shapes = [_dims(tensor.shape) for tensor in inputs]
    if not any(shape[:1] == (-1,) for shape in shapes):
        if opts.batch_given:
            raise BuildOptionsError(
                "the ONNX graph has a fixed batch, so --min-batch/--opt-batch/--max-batch do not apply; drop them or "
                "re-export with `fornet-export --dynamic-batch`"
            )
        return [_tensor_record(tensor) for tensor in inputs], None
    profile = builder.create_optimization_profile()
    records = []
    for tensor, shape in zip(inputs, shapes, strict=True):
        if any(dim < 0 for dim in shape[1:]):
            raise BuildOptionsError(
                f"input {tensor.name!r} has dynamic dimensions besides the batch {shape}; the gate's k depends "
                "on the size: re-export the ONNX for one input size (`fornet-export --input-size HxW`)"
            )
        if shape[:1] != (-1,):
            records.append(_tensor_record(tensor))
            continue
        low, opt, high = ((batch, *shape[1:]) for batch in opts.batch_range())
        profile.set_shape(tensor.name, trt.Dims(list(low)), trt.Dims(list(opt)), trt.Dims(list(high)))
        records.append(_tensor_record(tensor, (low, opt, high)))
    config.add_optimization_profile(profile)
    return records, profile


def _use_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    previous = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(previous)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineBuildError(
            f"timing cache {path} was recorded for another GPU or TensorRT version; delete it or pass "
            "another --timing-cache path"
        )


def _tensor_record(tensor: trt.ITensor,
                   profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None) -> TensorRecord:
    shapes = None if profile is None else ShapeProfile(*profile)
    return TensorRecord(name=tensor.name, shape=_dims(tensor.shape), dtype=tensor.dtype.name, profile=shapes)


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(dims[i] for i in range(len(dims)))


def _parser_errors(parser: trt.OnnxParser) -> str:
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        lines.append(
            f"  node {error.node()} ({error.node_operator() or '?'} {error.node_name()!r}): {error.desc()}"
        )
    return "\n".join(lines) or "  (the parser reported no details)"


def _parse_hint(summary: OnnxSummary) -> str:
    gate = (" (the TopKGate node is served by the loaded plugin library; the errors concern other nodes)"
            if summary.needs_plugin else "")
    return f"re-export the ONNX with fornet-export for this TensorRT, or use a newer TensorRT{gate}"
