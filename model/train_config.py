"""The configuration of a training run, how it is stored, and which differences matter.

A run's configuration is saved as ``RUN/config.json`` and inside every checkpoint. Two
configurations describe *the same run* when they agree on every field that shapes the weights
or the schedule; the "runtime" fields (where the run writes, on which device, how often it
validates, how many loader workers) may change between a run and its resumption.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fornet.model.config import VARIANTS
from fornet.model.errors import ModelError

#: Fields that may differ when a run is resumed or restarted in the same folder.
RUNTIME_FIELDS = frozenset({"out", "device", "workers", "amp", "amp_dtype", "val_every", "val_size",
                            "val_limit", "log_every"})
AMP_DTYPES = ("bf16", "fp16")
DEVICES = ("cpu", "cuda")


class TrainConfigError(ModelError):
    """Invalid training options."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        data: Cityscapes-layout root with ``train`` and ``val`` splits.
        out: run folder (``config.json``, ``last.pth``, ``best.pth``, ``train.log``, ``metrics.jsonl``).
        variant: FoR-Net variant (see ``fornet.model.list_variants``).
        crop: training crop ``(H, W)``; images smaller than the crop are padded (label 255).
        scale: random rescaling range before cropping.
        iters: optimiser steps.
        batch: images per step *per process* (the global batch is ``batch * world size``).
        lr: peak AdamW learning rate, reached after ``warmup_iters``.
        weight_decay: AdamW decoupled weight decay (not applied to biases and norm parameters).
        warmup_iters: linear warm-up length; None = ``min(1000, iters // 10)``.
        ohem, ohem_thresh, ohem_min_kept: online hard example mining for the CE term.
        seed: seeds the weights' initialisation, the data order and the augmentation.
        pretrained_backbone: torchvision ResNet ``state_dict`` file for the backbone, or None.
        val_every: validate (and save ``last.pth``) every N steps; 0 = only at the end.
        val_size: validation input ``(H, W)``, or None for full resolution.
        val_limit: validate on the first N val images only, or None for all.
        workers: DataLoader worker processes per process; None = automatic.
        device: ``"cpu"``, ``"cuda"``, or None for CUDA when available.
        amp: mixed precision on CUDA; None = on with CUDA, off on CPU.
        amp_dtype: ``"bf16"`` or ``"fp16"`` (fp16 uses a GradScaler); None = bf16 where supported.
        log_every: write a ``metrics.jsonl`` training record every N steps.
    """

    data: str
    out: str
    variant: str
    crop: tuple[int, int] = (768, 768)
    scale: tuple[float, float] = (0.5, 2.0)
    iters: int = 80_000
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_iters: int | None = None
    ohem: bool = False
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100_000
    seed: int = 0
    pretrained_backbone: str | None = None
    val_every: int = 4000
    val_size: tuple[int, int] | None = None
    val_limit: int | None = None
    workers: int | None = None
    device: str | None = None
    amp: bool | None = None
    amp_dtype: str | None = None
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.warmup_iters is None:
            object.__setattr__(self, "warmup_iters", min(1000, self.iters // 10))
        # Input paths become absolute so that a run can be resumed from any working directory.
        for name in ("data", "pretrained_backbone"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.path.abspath(Path(value).expanduser()))
        object.__setattr__(self, "out", str(Path(self.out).expanduser()))
        self._validate()

    def _validate(self) -> None:
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        for name in ("iters", "batch"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_iters", "val_every", "seed", "ohem_min_kept"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            problems.append(f"log_every must be >= 1, got {self.log_every}")
        if self.lr <= 0 or self.weight_decay < 0:
            problems.append(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if not 0 < self.scale[0] <= self.scale[1]:
            problems.append(f"scale must be 0 < min <= max, got {self.scale}")
        if not 0.0 < self.ohem_thresh <= 1.0:
            problems.append(f"ohem_thresh must be in (0, 1], got {self.ohem_thresh}")
        if self.workers is not None and self.workers < 0:
            problems.append(f"workers must be >= 0, got {self.workers}")
        if self.val_limit is not None and self.val_limit < 1:
            problems.append(f"val_limit must be >= 1, got {self.val_limit}")
        if self.device not in (None, *DEVICES):
            problems.append(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.amp_dtype not in (None, *AMP_DTYPES):
            problems.append(f"amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {self.amp_dtype!r}")
        if min(self.crop) < 1 or (self.val_size is not None and min(self.val_size) < 1):
            problems.append(f"crop and val_size must be positive, got {self.crop} and {self.val_size}")
        if problems:
            raise TrainConfigError("invalid training options: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], /, **overrides: Any) -> TrainConfig:
        """Inverse of :meth:`to_dict`; ``overrides`` replace stored values.

        Raises:
            TrainConfigError: unknown or missing fields.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        merged = {**dict(values), **overrides}
        unknown = sorted(set(merged) - fields)
        if unknown:
            raise TrainConfigError(f"unknown training option(s) {', '.join(unknown)}; "
                                   f"valid ones: {', '.join(sorted(fields))}")
        missing = sorted(f for f in ("data", "out", "variant") if merged.get(f) is None)
        if missing:
            flags = ", ".join(f"--{f}" for f in missing)
            raise TrainConfigError(f"missing {flags}; a new run needs --data, --variant and --out "
                                   "(a resumed run takes them from its checkpoint)")
        for name in ("crop", "scale", "val_size"):
            if merged.get(name) is not None:
                merged[name] = tuple(merged[name])
        return cls(**merged)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of field ``name`` (as the CLI's help shows it)."""
        return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def run_differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """``"field: old -> new"`` for every non-runtime field on which two configurations differ.

    Paths are compared after resolving them, so ``./data`` and ``data`` are the same.
    """
    diffs = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in RUNTIME_FIELDS:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name in ("data", "pretrained_backbone") and a is not None and b is not None:
            same = os.path.realpath(a) == os.path.realpath(b)
        else:
            same = a == b
        if not same:
            diffs.append(f"{f.name}: {a!r} -> {b!r}")
    return diffs
