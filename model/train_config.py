"""The configuration of a training run, how it is stored, and which differences matter.

A run's configuration is saved as ``RUN/config.json`` and inside every checkpoint. Two
configurations describe *the same run* when they agree on every field that shapes the weights
or the schedule; the "runtime" fields (where the run writes, on which device, how often it
validates, how many loader workers) may change between a run and its resumption.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fornet.model.config import VARIANTS
from fornet.model.errors import ModelError
from fornet.options import DEVICE_METAVAR, OptionGroup, device_arg, hw_arg, option, parse_device, positive_int_arg

#: Fields that may differ when a run is resumed or restarted in the same folder.
RUNTIME_FIELDS = frozenset({"out", "device", "workers", "amp", "amp_dtype", "val_every", "val_size",
                            "val_limit", "log_every"})
AMP_DTYPES = ("bf16", "fp16")
RUN = OptionGroup("run")
SCHEDULE = OptionGroup("schedule")
VALIDATION = OptionGroup("validation and logging")
HARDWARE = OptionGroup("hardware")


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

    data: str = option(flag="--data", parse=Path, convert=str, metavar="DIR", group=RUN,
                       help="data set root holding leftImg8bit/ and gtFine/")
    out: str = option(flag="--out", parse=Path, convert=str, metavar="DIR", required=True, group=RUN,
                      help="run folder (config.json, last.pth, best.pth, train.log, metrics.jsonl)")
    variant: str = option(flag="--variant", choices=tuple(VARIANTS), metavar="NAME", group=RUN,
                          help=f"architecture ({', '.join(VARIANTS)})")
    crop: tuple[int, int] = option((768, 768), flag="--crop", parse=hw_arg, metavar="HxW", group=SCHEDULE,
                                   help="random crop")
    scale: tuple[float, float] = option((0.5, 2.0), flag="--scale", parse=float, nargs=2, metavar=("MIN", "MAX"),
                                        convert=tuple, group=SCHEDULE, help="random rescale range")
    iters: int = option(80_000, flag="--iters", parse=int, group=SCHEDULE, help="optimiser steps")
    batch: int = option(8, flag="--batch", parse=positive_int_arg, metavar="N", group=SCHEDULE,
                        help="images per step and process")
    lr: float = option(1e-3, flag="--lr", parse=float, group=SCHEDULE, help="peak AdamW learning rate")
    weight_decay: float = option(1e-2, flag="--weight-decay", parse=float, group=SCHEDULE, help="AdamW weight decay")
    warmup_iters: int | None = option(None, flag="--warmup-iters", parse=int, default_text="min(1000, iters/10)",
                                      group=SCHEDULE, help="linear warm-up steps")
    ohem: bool = option(False, flag="--ohem", group=SCHEDULE, help="online hard example mining for the CE term")
    ohem_thresh: float = option(0.7, flag="--ohem-thresh", parse=float, group=SCHEDULE,
                                help="OHEM probability threshold")
    ohem_min_kept: int = option(100_000, flag="--ohem-min-kept", parse=int, group=SCHEDULE,
                                help="OHEM minimum kept pixels per batch")
    seed: int = option(0, flag="--seed", parse=int, group=RUN, help="seed of weights, data order and augmentation")
    pretrained_backbone: str | None = option(None, flag="--pretrained-backbone", metavar="FILE", group=RUN,
                                             help="torchvision ResNet state_dict of the variant's depth (nothing "
                                                  "is downloaded)")
    val_every: int = option(4000, flag="--val-every", parse=int, group=VALIDATION,
                            help="validate and save last.pth every N steps, 0 = at the end only")
    val_size: tuple[int, int] | None = option(None, flag="--val-size", parse=hw_arg, metavar="HxW", group=VALIDATION,
                                              default_text="full size", help="validation input size")
    val_limit: int | None = option(None, flag="--val-limit", parse=int, metavar="N", group=VALIDATION,
                                   help="validate on the first N images only")
    workers: int | None = option(None, flag="--workers", parse=int, group=HARDWARE,
                                 default_text="0 on a CPU with <= 2 cores, 2 on larger CPUs, up to 8 per GPU",
                                 help="DataLoader workers per process")
    device: str | None = option(None, flag="--device", parse=device_arg, metavar=DEVICE_METAVAR, group=HARDWARE,
                                default_text="auto: cuda when available, else cpu",
                                help="training device (N means cuda:N; under torchrun each process takes its "
                                     "LOCAL_RANK's GPU)")
    amp: bool | None = option(None, flag="--amp", action=argparse.BooleanOptionalAction, group=HARDWARE,
                              default_text="on with CUDA", help="mixed precision (CUDA only)")
    amp_dtype: str | None = option(None, flag="--amp-dtype", choices=AMP_DTYPES, group=HARDWARE,
                                   default_text="bf16 where supported", help="autocast dtype")
    log_every: int = option(10, flag="--log-every", parse=int, group=VALIDATION,
                            help="metrics.jsonl record every N steps")

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
        if self.device is not None:
            try:
                parse_device(self.device)
            except ValueError as exc:
                problems.append(str(exc))
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
