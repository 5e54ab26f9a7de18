"""The one place that reads a TensorRT plan's metadata (``<plan>.json``) for Triton's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fornet.export.errors import ExportError
from fornet.runtime.tensorrt.plan_metadata import EngineMetadata, TensorRecord


@dataclass(frozen=True)
class PlanTensor:
    """One plan input/output as built: TensorRT dtype name, shape (-1 dynamic), largest profile shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    max_shape: tuple[int, ...] | None


@dataclass(frozen=True)
class PlanIO:
    """What Triton's configuration needs from a plan."""

    inputs: tuple[PlanTensor, ...]
    outputs: tuple[PlanTensor, ...]
    plugin_library: str | None


def read_plan_io(plan: Path) -> PlanIO:
    """Tensors and plugin library of ``plan`` from its metadata (``fornet build`` writes it)."""
    metadata = EngineMetadata.load_if_present(plan)
    if metadata is None:
        raise ExportError(f"{plan} has no metadata file {plan.name}.json, so its tensors are unknown here; build "
                          "the plan with `fornet build`, which writes it")

    def tensors(records: tuple[TensorRecord, ...]) -> tuple[PlanTensor, ...]:
        return tuple(PlanTensor(name=t.name, dtype=t.dtype, shape=t.shape,
                                max_shape=t.profile.max if t.profile else None) for t in records)

    plugin = metadata.plugin.library if metadata.plugin is not None else None
    return PlanIO(tensors(metadata.inputs), tensors(metadata.outputs), plugin)
