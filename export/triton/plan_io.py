"""The one place that reads a TensorRT plan's metadata (``<plan>.json``) for Triton's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fornet.export.errors import ExportError
from fornet.runtime.tensorrt.plan_metadata import read_engine_metadata


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
    metadata = read_engine_metadata(plan)
    if metadata is None:
        raise ExportError(f"{plan} has no metadata file {plan.name}.json, so its tensors are unknown here; build "
                          "the plan with `fornet build`, which writes it")

    def tensors(key: str) -> tuple[PlanTensor, ...]:
        return tuple(PlanTensor(name=str(t["name"]), dtype=str(t["dtype"]), shape=tuple(int(d) for d in t["shape"]),
                                max_shape=tuple(int(d) for d in t["profile"]["max"]) if t.get("profile") else None)
                     for t in metadata[key])

    try:
        plugin = metadata.get("plugin")
        return PlanIO(tensors("inputs"), tensors("outputs"), str(plugin["library"]) if plugin else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{plan}.json lacks tensor fields ({exc}); rebuild the plan with `fornet build`") from exc
