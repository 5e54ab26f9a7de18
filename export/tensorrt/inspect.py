"""Describe a built plan: I/O tensors, layers and their precisions (``fornet-info --engine``).

:func:`describe_engine` deserialises the plan (loading the plugin library first when the plan's
sidecar says it holds the TopKGate plugin) and reads TensorRT's EngineInspector;
:func:`format_engine_description` turns that into text and needs no TensorRT.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fornet.hashing import sha256_file
from fornet.runtime.cuda.device import cuda_device
from fornet.runtime.errors import EngineLoadError
from fornet.runtime.tensorrt.env import LogTail, make_logger, require_tensorrt
from fornet.runtime.tensorrt.plan_metadata import EngineMetadata
from fornet.runtime.tensorrt.plugins import PluginLibraryError, load_plugin_library


@dataclass(frozen=True)
class IOTensor:
    """One engine I/O tensor as TensorRT reports it."""

    name: str
    mode: str
    shape: tuple[int, ...]
    dtype: str
    format: str


def describe_engine(plan_path: str | os.PathLike[str], plugin: str | os.PathLike[str] | None = None) -> str:
    """Human-readable description of the plan at ``plan_path``.

    The plugin library (``plugin``, else the usual search) is loaded first when given or when the
    plan's sidecar records one (a hard error if missing); for a plan without sidecar it is loaded
    if one is found.

    Raises:
        FornetError: no TensorRT or GPU, missing plugin library, or a plan this TensorRT cannot load.
    """
    plan = Path(plan_path)
    if not plan.is_file():
        raise EngineLoadError(f"plan {plan} not found; build it with fornet-build")
    metadata = EngineMetadata.load_if_present(plan)
    version = require_tensorrt()
    import tensorrt as trt

    cuda_device()
    notes = []
    recorded = metadata.plugin if metadata is not None else None
    library: Path | None = None
    if plugin is not None or recorded is not None:
        library = load_plugin_library(plugin)
    elif metadata is None:
        with contextlib.suppress(PluginLibraryError):
            library = load_plugin_library()
    if library is not None:
        same = recorded is not None and recorded.sha256 == sha256_file(library)
        notes.append(f"plugin: {library}" + (f" ({'same' if same else 'not the same'} library as at build time)"
                                             if recorded is not None else ""))
    tail = LogTail()
    logger = make_logger(tail)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    if engine is None:
        raise EngineLoadError(
            f"TensorRT {version} cannot deserialise {plan}; last log lines:\n{tail.text()}\n"
            "plans only load on the TensorRT version and GPU they were built with (and need the plugin library "
            "when they hold the TopKGate plugin): rebuild with fornet-build, or pass the plugin library"
        )
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        shape = engine.get_tensor_shape(name)
        tensors.append(IOTensor(
            name=name,
            mode=engine.get_tensor_mode(name).name,
            shape=tuple(shape[i] for i in range(len(shape))),
            dtype=engine.get_tensor_dtype(name).name,
            format=engine.get_tensor_format_desc(name),
        ))
    inspector = engine.create_engine_inspector()
    information = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    header = [f"plan: {plan} (TensorRT {version})", *notes]
    if metadata is not None:
        header.append(f"built: TensorRT {metadata.tensorrt_version} on {metadata.gpu.name}, "
                      f"precision {metadata.built_precision}")
    return "\n".join(header) + "\n" + format_engine_description(tensors, information)


def format_engine_description(tensors: list[IOTensor], information: dict[str, Any]) -> str:
    """Text for the I/O tensors and the EngineInspector JSON (``get_engine_information``).

    With ``ProfilingVerbosity.DETAILED`` (what fornet-build sets) each layer lists its type and
    output formats; a plan built with less detail lists layer names only.
    """
    lines = ["I/O tensors:"]
    lines += [f"  {t.mode.lower():6} {t.name}: {t.dtype} {list(t.shape)} [{t.format}]" for t in tensors]
    layers = information.get("Layers", [])
    lines.append(f"layers: {len(layers)}")
    precisions: Counter[str] = Counter()
    for layer in layers:
        if not isinstance(layer, dict):
            lines.append(f"  {layer}")
            continue
        outputs = [str(o.get("Format/Datatype", "?")) for o in layer.get("Outputs", []) if isinstance(o, dict)]
        precisions.update(_datatype(fmt) for fmt in outputs)
        lines.append(f"  {layer.get('LayerType', '?'):14} {layer.get('Name', '?')} -> {', '.join(outputs) or '-'}")
    if precisions:
        lines.append("layer outputs by precision: " + ", ".join(f"{k} {v}" for k, v in sorted(precisions.items())))
    return "\n".join(lines)


def _datatype(format_description: str) -> str:
    """``"Row major linear FP16 format"`` -> ``"FP16"`` (the TensorRT datatype word in it)."""
    for word in format_description.replace("(", " ").replace(")", " ").split():
        if word.upper() in {"FP32", "FP16", "BF16", "INT8", "INT32", "INT64", "UINT8", "BOOL", "FP8", "INT4"}:
            return word.upper()
    return format_description
