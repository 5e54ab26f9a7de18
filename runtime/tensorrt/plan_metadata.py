"""The JSON sidecar of a TensorRT plan (``fornet.plan`` -> ``fornet.plan.json``).

The plan itself stays a pure TensorRT plan (trtexec, DeepStream and Triton load it as is); what a
deployment needs to know about it lives beside it: TensorRT version, GPU, precision, I/O shapes
and profile, build options, the plugin library and the source ONNX, each with its sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fornet.errors import RecordError
from fornet.records import FileDigest, Record
from fornet.runtime.errors import TensorRTError

#: Suffix of a plan's sidecar: ``fornet_fp16.plan`` -> ``fornet_fp16.plan.json``.
METADATA_SUFFIX = ".json"


class EngineMetadataError(RecordError, TensorRTError):
    """The sidecar of a plan is unreadable."""


def metadata_path(plan_path: str | os.PathLike[str]) -> Path:
    """Where a plan's sidecar lives: ``<plan>.json``."""
    plan = Path(plan_path)
    return plan.with_name(plan.name + METADATA_SUFFIX)


@dataclass(frozen=True)
class TensorRecord:
    """One network input or output as built; ``-1`` marks a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    profile: dict[str, tuple[int, ...]] | None = None


@dataclass(frozen=True)
class PluginInfo:
    """The plugin library a plan was built with."""

    library: str
    sha256: str
    creator: str
    #: The library is serialised into a version-compatible plan (``plugins_to_serialize``): the
    #: runtime then loads it from the plan, not from disk.
    serialized_in_plan: bool = False


@dataclass(frozen=True)
class EngineMetadata(Record):
    """``<plan>.json``: how and from what a plan was built (written by ``fornet build``)."""

    FORMAT: ClassVar[str] = "fornet-deploy/engine-sidecar"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy engine sidecar"
    FIX: ClassVar[str] = "rebuild the engine with fornet-build"
    ERROR: ClassVar[type[RecordError]] = EngineMetadataError

    fornet_deploy_version: str
    plan: FileDigest
    tensorrt_version: str
    gpu: dict[str, str]
    #: The network's precision (``fp32``, ``fp16``, ``int8``, ``int8-legacy-calibration``); not named
    #: ``precision``, which the TensorRT-11 API check reserves for TensorRT's removed layer attribute.
    built_precision: str
    strongly_typed: bool
    source_onnx: FileDigest
    inputs: tuple[TensorRecord, ...]
    outputs: tuple[TensorRecord, ...]
    build_options: dict[str, Any]
    plugin: PluginInfo | None
    calibration_cache: dict[str, Any] | None
    fornet_build_command: str

    @classmethod
    def load_if_present(cls, plan_path: str | os.PathLike[str]) -> EngineMetadata | None:
        """The sidecar of ``plan_path``, or ``None`` when there is none (a plan built elsewhere)."""
        source = metadata_path(plan_path)
        return cls.load(source) if source.exists() else None
