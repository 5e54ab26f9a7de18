"""Train a FoR-Net on a Cityscapes-layout data set (CPU, one GPU, or DDP).

Objective: :class:`fornet.model.loss.FoRNetLoss` (the reference's CE + Dice + 0.5 * selector BCE).
Optimiser: AdamW, linear warm-up then poly (power 0.9) decay, one step per iteration.

Multi-GPU: ``torchrun --nproc-per-node N -m fornet train ...`` (DDP, SyncBatchNorm on CUDA,
``--batch`` per process). Only rank 0 validates, logs and writes files.

The run folder holds ``config.json``, ``train.log``, ``metrics.jsonl``, ``last.pth`` (resumable:
weights, optimiser, scheduler, step, best mIoU; written at every validation and at the end) and
``best.pth`` (the weights with the best validation mIoU). Both load with
``fornet.model.load_model``.
"""
# ruff: noqa: TID253

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from fornet import __version__
from fornet.calibration.cityscapes import CityscapesDataset, scan_split
from fornet.faults import fault_point
from fornet.model.checkpoint import save_checkpoint
from fornet.model.config import IMAGENET_MEAN, IMAGENET_STD
from fornet.model.errors import ModelError
from fornet.model.evaluate import evaluate
from fornet.model.loss import FoRNetLoss
from fornet.model.train_config import TrainConfig
from fornet.model.train_data import AugmentedTrainSet, default_workers, train_batches
from fornet.model.train_env import TrainEnvironment, setup_environment
from fornet.model.train_run import MetricsLine, RunFolder, run_logger
from fornet.model.train_state import (
    TrainState,
    build_optimizer,
    checkpoint_extra,
    reconcile_best,
    restore_state,
)
from fornet.model.variants import build_model, load_backbone_weights

LOSS_TERMS = ("loss", "ce", "dice", "sel")


class TrainingError(ModelError):
    """Training cannot start or continue (bad resume file, diverged loss, ...)."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished :func:`train` call produced.

    Attributes:
        out: the run folder.
        iterations: optimiser steps done in total (including those before a resume).
        best_miou: best validation mIoU (fraction) so far, None if never validated.
        last_miou: validation mIoU at the end, None if never validated.
        last_checkpoint, best_checkpoint: the checkpoint files (``best`` None if absent).
        seconds: wall time of this call.
    """

    out: Path
    iterations: int
    best_miou: float | None
    last_miou: float | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    seconds: float


class _LossWindow:
    """Loss terms summed over the steps since the last log record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums = dict.fromkeys(LOSS_TERMS, 0.0)
        self.count = 0
        self.started = time.perf_counter()

    def add(self, values: dict[str, float]) -> None:
        for key in LOSS_TERMS:
            self.sums[key] += values[key]
        self.count += 1

    def means(self) -> torch.Tensor:
        return torch.tensor([self.sums[k] / max(1, self.count) for k in LOSS_TERMS])

    def seconds_per_step(self) -> float:
        return (time.perf_counter() - self.started) / max(1, self.count)


class _Trainer:
    """One process's training loop (see :func:`train`)."""

    def __init__(self, config: TrainConfig, env: TrainEnvironment, folder: RunFolder, progress: bool) -> None:
        self.config, self.env, self.folder, self.progress = config, env, folder, progress
        self.train_set = CityscapesDataset(config.data, "train")
        self.val_set = CityscapesDataset(config.data, "val")
        torch.manual_seed(config.seed)
        self.model = build_model(config.variant).to(env.device)
        self.criterion = FoRNetLoss(ohem=config.ohem, ohem_thresh=config.ohem_thresh,
                                    ohem_min_kept=config.ohem_min_kept)
        self.scaler = torch.amp.GradScaler("cuda") if env.uses_grad_scaler else None
        self.optimizer, self.scheduler = build_optimizer(self.model, config)
        self.state = TrainState()
        self.net: nn.Module = self.model

    def load_pretrained_backbone(self) -> None:
        """Start from the ImageNet backbone named by ``config.pretrained_backbone`` (if any)."""
        path = self.config.pretrained_backbone
        if path is None:
            return
        if not Path(path).is_file():
            raise TrainingError(f"--pretrained-backbone {path} does not exist; pass a torchvision ResNet "
                                "state_dict file of the variant's depth, or omit the option")
        load_backbone_weights(self.model, path)

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint written by :meth:`save`."""
        self.state = restore_state(path, self.config, self.model, self.optimizer, self.scheduler,
                                   self.scaler, self.env.device)

    def wrap_distributed(self) -> None:
        """SyncBatchNorm (CUDA) and DDP when the job has several processes."""
        if not self.env.distributed:
            return
        cuda = self.env.device.type == "cuda"
        if cuda:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net = nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.env.local_rank] if cuda else None)

    def describe(self) -> str:
        """One line about the job for the log."""
        env, cfg = self.env, self.config
        params = sum(p.numel() for p in self.model.parameters())
        precision = {None: "float32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}
        return (f"fornet {__version__}, torch {torch.__version__}: {cfg.variant} ({params / 1e6:.2f} M params) "
                f"on {env.device} x {env.world_size} process(es), {precision[env.amp_dtype]}, "
                f"{torch.get_num_threads()} CPU thread(s); {len(self.train_set)} train / "
                f"{len(self.val_set)} val images; step {self.state.step} of {cfg.iters}")

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        with self.env.autocast():
            outputs = self.net(images)
        total, parts = self.criterion(outputs, labels)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
        else:
            total.backward()
        value, lr = float(total.detach()), float(self.optimizer.param_groups[0]["lr"])
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss became {value} at step {self.state.step + 1}; start a new run (another --out) "
                f"with a lower --lr (now {self.config.lr}), a longer --warmup-iters, or without --amp"
            )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return {"loss": value, "lr": lr, **{k: float(v) for k, v in parts.items()}}

    def save(self, path: Path) -> None:
        """Write a resumable checkpoint (atomically)."""
        save_checkpoint(path, self.model, self.config.variant, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                        train_config=self.config.to_dict(),
                        extra=checkpoint_extra(self.state, self.config, self.env.world_size, self.env.device,
                                               self.optimizer, self.scheduler, self.scaler))

    def _validate_and_save(self, log: logging.Logger) -> None:
        """Rank 0 validates and writes checkpoints; the others wait."""
        if self.env.is_main:
            result = evaluate(self.model, self.val_set, input_size=self.config.val_size, device=self.env.device,
                              progress=self.progress, limit=self.config.val_limit)
            miou = float(result.miou)
            self.state.last_miou = miou
            improved = self.state.best_miou is None or miou > self.state.best_miou
            if improved:
                self.state.best_miou = miou
            self.folder.append_metrics(MetricsLine(iter=self.state.step, kind="val", miou=miou,
                                                   iou=tuple(float(v) for v in result.iou)))
            # best.pth first: last.pth never records a best score that best.pth does not hold.
            fault_point("train.before_save")
            if improved:
                self.save(self.folder.best)
            fault_point("train.between_saves")
            self.save(self.folder.last)
            fault_point("train.after_saves")
            log.info("step %d: val mIoU %.4f (best %.4f)%s", self.state.step, miou,
                     self.state.best_miou, "; saved best.pth" if improved else "")
        self.env.barrier()

    def run(self, log: logging.Logger) -> None:
        """Train from ``state.step`` to ``config.iters``, validating on schedule."""
        cfg, env = self.config, self.env
        workers = cfg.workers if cfg.workers is not None else default_workers(env.device, env.local_world_size)
        dataset = AugmentedTrainSet(self.train_set, cfg.crop, cfg.scale, cfg.seed, IMAGENET_MEAN, IMAGENET_STD)
        batches = train_batches(dataset, cfg.batch, env.rank, env.world_size, cfg.seed, self.state.step,
                                workers, pin_memory=env.device.type == "cuda")
        self.net.train()
        window = _LossWindow()
        bar = tqdm(total=cfg.iters, initial=self.state.step, desc="train", unit="it",
                   disable=not (self.progress and env.is_main), dynamic_ncols=True)
        with bar:
            while self.state.step < cfg.iters:
                images, labels = next(batches)
                values = self._step(images.to(env.device, non_blocking=True),
                                    labels.to(env.device, non_blocking=True).long())
                self.state.step += 1
                window.add(values)
                bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{values['lr']:.2e}", refresh=False)
                bar.update()
                if self.state.step % cfg.log_every == 0 or self.state.step == cfg.iters:
                    self._log_window(log, window, values["lr"])
                if (cfg.val_every and self.state.step % cfg.val_every == 0) or self.state.step == cfg.iters:
                    self._validate_and_save(log)

    def _log_window(self, log: logging.Logger, window: _LossWindow, lr: float) -> None:
        """Average the window's losses over the processes; rank 0 writes them out."""
        means = self.env.mean_over_processes(window.means()).tolist()
        seconds = window.seconds_per_step()
        if self.env.is_main:
            loss, ce, dice, sel = means  # LOSS_TERMS
            self.folder.append_metrics(MetricsLine(iter=self.state.step, kind="train", lr=lr, s_per_iter=seconds,
                                                   loss=loss, ce=ce, dice=dice, sel=sel))
            log.info("step %d/%d: loss %.4f (ce %.4f, dice %.4f, sel %.4f), lr %.3g, %.2f s/it",
                     self.state.step, self.config.iters, *means, lr, seconds)
        window.reset()


def existing_resume_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path when it is a file; else a :class:`TrainingError` that says how to start or resume."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"nothing to resume: {path} does not exist; start a new run without --resume, "
                            "or pass --resume PATH to a run's last.pth")
    return path


def train(config: TrainConfig, resume: str | os.PathLike[str] | None = None,
          progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Train (or continue training) a FoR-Net as ``config`` says.

    Args:
        config: the run's options.
        resume: a ``last.pth`` to continue from (same schedule, data order and augmentation as
            an uninterrupted run); None starts a new run (in a folder that holds no run).
        progress: show a progress bar and log lines on the console (``train.log`` is always written).
        overwrite: start a new run even in a folder that holds one (replacing its checkpoints and metrics).

    Returns:
        :class:`TrainResult` (ranks other than 0 do not validate: their mIoU fields are None).

    Raises:
        FornetError: missing data splits or a bad image or label in them (checked before any work), an
            ``out`` folder holding a run (without ``overwrite``), a missing or mismatching resume file, an
            unavailable device, or a diverging loss.
    """
    started = time.perf_counter()
    folder = RunFolder(config.out)
    resume_path = existing_resume_file(resume) if resume is not None else None
    with setup_environment(config.device, config.amp, config.amp_dtype) as env:
        if env.is_main and resume_path is None:
            folder.check_fresh_start(config, overwrite)
        if env.is_main:
            for split in ("train", "val"):
                scan_split(config.data, split, progress=progress)
        env.barrier()
        trainer = _Trainer(config, env, folder, progress)
        repaired = None
        if resume_path is not None:
            trainer.restore(resume_path)
            repaired = reconcile_best(trainer.state, folder.best) if env.is_main else None
        else:
            trainer.load_pretrained_backbone()
        trainer.wrap_distributed()
        if env.is_main:
            folder.prepare(config, resuming=resume_path is not None)
            if resume_path is not None:
                folder.truncate_metrics(trainer.state.step)
        env.barrier()
        with run_logger(folder if env.is_main else None, console=progress and env.is_main) as log:
            what = f"resumed from {resume_path}" if resume_path is not None else "new run"
            log.info("%s in %s: %s", what, folder.path, trainer.describe())
            if repaired is not None:
                log.warning("%s", repaired)
            try:
                trainer.run(log)
            except Exception as exc:
                log.error("stopped at step %d: %s", trainer.state.step, exc)
                raise
            log.info("done: %d steps, best val mIoU %s", trainer.state.step,
                     "n/a" if trainer.state.best_miou is None else f"{trainer.state.best_miou:.4f}")
    best = folder.best if folder.best.is_file() else None
    state = trainer.state if env.is_main else TrainState(trainer.state.step)
    return TrainResult(folder.path, state.step, state.best_miou, state.last_miou, folder.last, best,
                       time.perf_counter() - started)
