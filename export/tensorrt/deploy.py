"""The TensorRT step after an export: build the plans of the deployed files here, or say how on the target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fornet.export.errors import ExportError
from fornet.export.tensorrt.build import build_engine, tensorrt_available
from fornet.export.tensorrt.options import BuildOptions, engine_build_command

if TYPE_CHECKING:
    from fornet.export.api import ExportResult


@dataclass(frozen=True)
class EngineStep:
    """What the TensorRT step did: the plans built here, or the commands that build them on the target."""

    built: tuple[Path, ...]
    commands: tuple[str, ...]


def build_or_describe_engines(result: ExportResult, plugin: Path | None, require_engine: bool) -> EngineStep:
    """Build a plan for every file of :meth:`ExportResult.engine_sources` when TensorRT is importable, else
    return the ``fornet-build-plugin`` / ``fornet-build`` commands for the target.

    Raises:
        ExportError: ``require_engine`` and no TensorRT here.
    """
    sources = result.engine_sources()
    options = BuildOptions(plugin=plugin)
    if tensorrt_available():
        return EngineStep(tuple(build_engine(source, options=options) for source in sources), ())
    if require_engine:
        raise ExportError("--require-engine: TensorRT's Python bindings are not importable here, so no plan was "
                          "built (the ONNX files are complete); install TensorRT (pip install tensorrt, or "
                          "JetPack's python3-libnvinfer) or drop --require-engine and build on the target")
    commands = ["fornet-build-plugin"] if result.gate == "plugin" else []
    commands += [engine_build_command(source, options=options) for source in sources]
    return EngineStep((), tuple(commands))
