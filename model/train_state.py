"""Optimisation state: the learning-rate schedule, the optimiser, and what a resumable checkpoint holds.

A ``last.pth`` is a regular :func:`fornet.model.save_checkpoint` file (``load_model`` reads it)
whose extra entries are plain tensors and numbers, loadable with ``torch.load(weights_only=True)``:
``iteration``, ``best_miou``, ``miou``, ``seed``, ``world_size``, ``optimizer``, ``scheduler``,
``scaler`` (fp16 loss scaling, or None) and ``rng`` (torch CPU / CUDA generator states).
"""
# ruff: noqa: TID253

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fornet.model.checkpoint import CheckpointError, read_checkpoint
from fornet.model.errors import ModelError
from fornet.model.train_config import TrainConfig, run_differences

#: Exponent of the poly learning-rate decay.
POLY_POWER = 0.9


class ResumeError(ModelError):
    """A checkpoint that cannot be resumed (not a training checkpoint, or other options)."""


def warmup_poly(step: int, total: int, warmup: int, power: float = POLY_POWER) -> float:
    """Learning-rate factor for 0-based ``step`` of ``total``.

    Linear warm-up ``(step + 1) / warmup`` for the first ``warmup`` steps, then
    ``(1 - (step - warmup) / (total - warmup)) ** power``: 1 right after warm-up, decaying
    towards (never reaching) 0 at the last step.
    """
    if step < warmup:
        return (step + 1) / warmup
    return (1.0 - (step - warmup) / max(1, total - warmup)) ** power


def build_optimizer(model: nn.Module, config: TrainConfig) -> tuple[torch.optim.AdamW,
                                                                     torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no weight decay on biases and normalisation parameters) and the warm-up/poly schedule.

    The scheduler is stepped once per optimiser step.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    total, warmup = config.iters, int(config.warmup_iters or 0)

    def factor(step: int) -> float:
        return warmup_poly(step, total, warmup)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainState:
    """The progress of a run: optimiser steps done and validation results."""

    step: int = 0
    best_miou: float | None = None
    last_miou: float | None = None


def checkpoint_extra(state: TrainState, config: TrainConfig, world_size: int, device: torch.device,
                     optimizer: torch.optim.Optimizer, scheduler: Any,
                     scaler: torch.amp.GradScaler | None) -> dict[str, Any]:
    """The resumable entries that go into ``save_checkpoint(..., extra=...)``."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {
        "iteration": state.step,
        "best_miou": state.best_miou,
        "miou": state.last_miou,
        "seed": config.seed,
        "world_size": world_size,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng,
    }


def _training_config(stored: Any, path: str | os.PathLike[str], overrides: Mapping[str, Any]) -> TrainConfig:
    if not isinstance(stored, dict) or "optimizer" not in stored or not stored.get("train_config"):
        raise ResumeError(f"{path} is not a resumable fornet-train checkpoint (it has no optimiser state or "
                          "training configuration); resume from a run's last.pth, or start a new run "
                          "(--pretrained-backbone takes ImageNet backbone weights)")
    return TrainConfig.from_dict(stored["train_config"], **overrides)


def resume_config(path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
    """The configuration stored in a training checkpoint, with ``overrides`` applied.

    Raises:
        CheckpointError: the file is missing or unreadable.
        ResumeError: the file is not a resumable training checkpoint.
    """
    return _training_config(read_checkpoint(path), path, overrides)


def restore_state(path: str | os.PathLike[str], config: TrainConfig, model: nn.Module,
                  optimizer: torch.optim.Optimizer, scheduler: Any,
                  scaler: torch.amp.GradScaler | None, device: torch.device) -> TrainState:
    """Load weights, optimiser, scheduler, loss scaler and RNG states from a ``last.pth``.

    Raises:
        ResumeError: not a training checkpoint, or saved with options that change the run
            (:func:`~fornet.model.train_config.run_differences`).
    """
    stored = read_checkpoint(path, map_location=device)
    diffs = run_differences(_training_config(stored, path, {}), config)
    if diffs:
        raise ResumeError(f"cannot resume {path} with different options ({'; '.join(diffs)}); resume with "
                          "the original options (omit them: they are read from the checkpoint) or start a "
                          "new run with another --out")
    model.load_state_dict(stored["model"])
    optimizer.load_state_dict(stored["optimizer"])
    scheduler.load_state_dict(stored["scheduler"])
    if scaler is not None and stored.get("scaler"):
        scaler.load_state_dict(stored["scaler"])
    torch.set_rng_state(stored["rng"]["torch"].cpu())
    if device.type == "cuda" and "cuda" in stored["rng"]:
        torch.cuda.set_rng_state(stored["rng"]["cuda"].cpu(), device)
    return TrainState(step=int(stored["iteration"]), best_miou=stored.get("best_miou"),
                      last_miou=stored.get("miou"))


def reconcile_best(state: TrainState, best_path: str | os.PathLike[str]) -> str | None:
    """Make ``state.best_miou`` the score of the ``best.pth`` on disk; say what was repaired.

    A run writes ``best.pth`` before the ``last.pth`` that records its score, so after a crash
    between the two ``best.pth`` may hold a better score than ``last.pth`` recorded: the file
    is the truth. A missing or unreadable ``best.pth`` resets the best score, so the next
    validation writes a new one.
    """
    recorded = state.best_miou
    try:
        stored = read_checkpoint(best_path) if os.path.exists(best_path) else None
    except CheckpointError as exc:
        state.best_miou = None
        return f"{best_path} cannot be read ({exc}); the next validation writes a new best.pth"
    if stored is None:
        state.best_miou = None
        if recorded is None:
            return None
        return (f"{best_path} is missing (last.pth recorded a best mIoU of {recorded:.4f}); the next validation "
                "writes a new best.pth")
    best = stored.get("miou")
    if best is None or float(best) == recorded:
        return None
    state.best_miou = float(best)
    return (f"{best_path} holds mIoU {best} but last.pth recorded a best of {recorded} (a save was interrupted); "
            "the best score is now that of best.pth")
