"""The JSON sidecar of a TensorRT plan (``fornet.plan`` -> ``fornet.plan.json``).

The plan itself stays a pure TensorRT plan (trtexec, DeepStream and Triton load it as is); what a
deployment needs to know about it lives beside it: TensorRT version, GPU, precision, I/O shapes
and profile, build options, the plugin library and the source ONNX, each with its sha256.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fornet import __version__
from fornet.atomic import write_text_atomic
from fornet.export.tensorrt.options import metadata_path
from fornet.runtime.errors import FornetRuntimeError

METADATA_FORMAT = "fornet-deploy/engine-sidecar/1"


class EngineMetadataError(FornetRuntimeError):
    """The sidecar of a plan is unreadable."""


@dataclass(frozen=True)
class TensorRecord:
    """One network input or output as built; ``-1`` marks a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        record: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.profile is not None:
            record["profile"] = dict(zip(("min", "opt", "max"), (list(s) for s in self.profile), strict=True))
        return record


def engine_record(
    *,
    plan: Path,
    plan_sha256: str,
    tensorrt_version: str,
    gpu: dict[str, str],
    precision: str,
    strongly_typed: bool,
    source_onnx: dict[str, str],
    inputs: list[TensorRecord],
    outputs: list[TensorRecord],
    build_options: dict[str, Any],
    plugin: dict[str, Any] | None,
    calibration_cache: dict[str, Any] | None,
    command: str,
) -> dict[str, Any]:
    """The sidecar content (keyword-only, so every field is named at the call site)."""
    return {
        "format": METADATA_FORMAT,
        "fornet_deploy_version": __version__,
        "plan": {"file": plan.name, "sha256": plan_sha256},
        "tensorrt_version": tensorrt_version,
        "gpu": gpu,
        "precision": precision,
        "strongly_typed": strongly_typed,
        "source_onnx": source_onnx,
        "inputs": [item.as_dict() for item in inputs],
        "outputs": [item.as_dict() for item in outputs],
        "build_options": build_options,
        "plugin": plugin,
        "calibration_cache": calibration_cache,
        "fornet_build_command": command,
    }


def write_engine_metadata(plan_path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write ``<plan>.json`` atomically; return its path."""
    target = metadata_path(plan_path)
    write_text_atomic(target, json.dumps(record, indent=2) + "\n")
    return target


def read_engine_metadata(plan_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``plan_path``, or ``None`` when there is none (a plan built elsewhere)."""
    source = metadata_path(plan_path)
    if not source.is_file():
        return None
    try:
        record = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineMetadataError(f"cannot read {source} ({exc}); rebuild the engine with fornet-build") from exc
    if not isinstance(record, dict) or record.get("format") != METADATA_FORMAT:
        raise EngineMetadataError(
            f"{source} is not a fornet-deploy engine sidecar ({METADATA_FORMAT}); rebuild the engine with fornet-build"
        )
    return record
