"""The JSON sidecar of a TensorRT plan (``fornet.plan`` -> ``fornet.plan.json``).

The plan itself stays a pure TensorRT plan (trtexec, DeepStream and Triton load it as is); what a
deployment needs to know about it lives beside it: TensorRT version, GPU, precision, I/O shapes
and profile, build options, the plugin library and the source ONNX, each with its sha256.

What the plan takes and returns is described by the sidecar of that source ONNX:
:func:`onnx_sidecar_for_plan` finds it and :func:`check_plan_binding` checks that it belongs to the plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fornet.errors import RecordError
from fornet.hashing import sha256_file
from fornet.records import FileDigest, Record
from fornet.runtime.errors import TensorRTError
from fornet.runtime.model_io import OVERRIDE_HINT, ModelSidecar, SidecarError

#: Suffix of a plan's sidecar: ``fornet_fp16.plan`` -> ``fornet_fp16.plan.json``.
METADATA_SUFFIX = ".json"


class EngineMetadataError(RecordError, TensorRTError):
    """The sidecar of a plan is unreadable."""


def metadata_path(plan_path: str | os.PathLike[str]) -> Path:
    """Where a plan's sidecar lives: ``<plan>.json``."""
    plan = Path(plan_path)
    return plan.with_name(plan.name + METADATA_SUFFIX)


@dataclass(frozen=True)
class ShapeProfile:
    """The optimisation profile of an input with a dynamic dimension: its smallest, tuned and largest shape."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class TensorRecord:
    """One network input or output as built; ``-1`` marks a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    profile: ShapeProfile | None = None


@dataclass(frozen=True)
class GpuInfo:
    """The GPU a plan was built on (a plan runs on that compute capability unless hardware-compatible)."""

    name: str
    #: ``"<major>.<minor>"``, e.g. ``"8.7"`` for Orin.
    compute_capability: str


@dataclass(frozen=True)
class BuildSettings:
    """The ``fornet-build`` options a plan was built with (paths as given; None: TensorRT's default).

    The recorded form of :class:`fornet.export.tensorrt.options.BuildOptions` (same field names).
    """

    plugin: str | None = None
    workspace_mib: int | None = None
    opt_level: int | None = None
    timing_cache: str | None = None
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    #: ``BuilderFlag.VERSION_COMPATIBLE``: the plan also runs on later TensorRT releases.
    version_compatible: bool = False
    #: ``"none"`` or ``"ampere+"`` (the plan runs on every Ampere-or-newer GPU).
    hardware_compat: str = "none"
    legacy_int8_cache: str | None = None
    verbose: bool = False


@dataclass(frozen=True)
class CalibrationCacheInfo:
    """The TensorRT calibration cache a legacy implicit-INT8 plan was built from."""

    file: str
    sha256: str
    #: The TensorRT version of the cache header, as a number (``100300`` for 10.3.0).
    tensorrt_version: int


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
    gpu: GpuInfo
    #: The network's precision (``fp32``, ``fp16``, ``int8``, ``int8-legacy-calibration``); not named
    #: ``precision``, which the TensorRT-11 API check reserves for TensorRT's removed layer attribute.
    built_precision: str
    strongly_typed: bool
    source_onnx: FileDigest
    inputs: tuple[TensorRecord, ...]
    outputs: tuple[TensorRecord, ...]
    build_options: BuildSettings
    plugin: PluginInfo | None
    calibration_cache: CalibrationCacheInfo | None
    fornet_build_command: str

    @classmethod
    def load_if_present(cls, plan_path: str | os.PathLike[str]) -> EngineMetadata | None:
        """The sidecar of ``plan_path``, or ``None`` when there is none (a plan built elsewhere)."""
        source = metadata_path(plan_path)
        return cls.load(source) if source.exists() else None


def onnx_sidecar_for_plan(plan_path: str | os.PathLike[str]) -> Path:
    """Where the sidecar describing the plan ``plan_path`` is expected: that of its source ONNX.

    The ONNX is the one named in the plan's own ``<plan>.json``, its sidecar looked for beside the
    plan; else ``<plan stem>.onnx.json`` (what ``fornet-build`` produces from ``<stem>.onnx`` by default).

    Raises:
        SidecarError: no sidecar in either place (the message names where it looked).
    """
    plan = Path(plan_path)
    metadata = EngineMetadata.load_if_present(plan)
    candidates = []
    if metadata is not None and metadata.source_onnx.file:
        candidates.append(ModelSidecar.path_for(plan.with_name(metadata.source_onnx.file)))
    candidates.append(plan.with_name(f"{plan.stem}.onnx.json"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise SidecarError(f"no model sidecar for {plan} (looked for {looked}); copy the <model>.onnx.json that "
                       "fornet-export wrote for the ONNX this plan was built from next to the plan, or pass "
                       "its path as sidecar=... / --sidecar")


def check_plan_binding(sidecar: ModelSidecar, sidecar_path: Path, plan_path: Path) -> None:
    """Refuse a sidecar that does not describe the plan ``plan_path`` (no ``<plan>.json``: nothing to check).

    The plan must have the sha256 its own ``<plan>.json`` records, and that file must name the ONNX
    the sidecar describes: this catches a plan replaced under old metadata, and the sidecar of
    another export.

    Raises:
        SidecarError: naming both files, what differs and how to fix it.
    """
    metadata = EngineMetadata.load_if_present(plan_path)
    if metadata is None:
        return
    plan_sha = sha256_file(plan_path)
    if plan_sha != metadata.plan.sha256:
        raise SidecarError(
            f"{metadata_path(plan_path)} describes a plan with sha256 {metadata.plan.sha256[:12]}... but "
            f"{plan_path} has sha256 {plan_sha[:12]}...: the plan was replaced or the metadata belongs to another "
            f"plan; rebuild with fornet-build (it writes both); {OVERRIDE_HINT}")
    if metadata.source_onnx.sha256 != sidecar.onnx.sha256:
        raise SidecarError(
            f"{plan_path} was built from {metadata.source_onnx.file} (sha256 {metadata.source_onnx.sha256[:12]}...) "
            f"but {sidecar_path} describes {sidecar.onnx.file} (sha256 {sidecar.onnx.sha256[:12]}...); use the "
            f"sidecar of the ONNX the plan was built from; {OVERRIDE_HINT}")
