"""``fornet train`` (alias ``fornet-train``): train a FoR-Net on a Cityscapes-layout data set (CPU, one GPU, or DDP).

Multi-GPU: ``torchrun --nproc-per-node N -m fornet train ...``. Flags that are not given stay out of
the parsed namespace, so a resumed run keeps its saved options and only the given ones replace them.
"""

from __future__ import annotations

import argparse
import operator
from dataclasses import dataclass

from fornet.cli.command import Command
from fornet.model.train_config import HARDWARE, RUN, SCHEDULE, VALIDATION, TrainConfig
from fornet.model.train_run import RunFolder
from fornet.options import add_options, given_options, option, option_groups, options_from_args


@dataclass(frozen=True)
class TrainRun:
    """How this invocation runs the training (beside the :class:`TrainConfig` it trains)."""

    resume: str | None = option(None, flag="--resume", nargs="?", const="", metavar="PATH", group=RUN,
                                help="continue RUN/last.pth (or PATH) with its saved options and schedule")
    overwrite: bool = option(False, flag="--overwrite", group=RUN,
                             help="start a new run in --out even if it holds one (its checkpoints and metrics are "
                                  "replaced); without it such a folder is refused")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, group=VALIDATION,
                            help="no progress bar or console log (train.log only)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every :class:`TrainConfig` flag and the :class:`TrainRun` flags, all left out of the namespace unless given."""
    groups = option_groups(parser, RUN, SCHEDULE, VALIDATION, HARDWARE)
    for options in (TrainConfig, TrainRun):
        add_options(parser, options, groups, suppress=True)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Start a new run, or resume one with the given flags replacing its saved options."""
    from fornet.model.train import TrainingError, existing_resume_file, train
    from fornet.model.train_state import resume_config

    how = options_from_args(TrainRun, args)
    given = given_options(TrainConfig, args)
    if how.resume is not None:
        if how.overwrite:
            raise TrainingError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
        path = existing_resume_file(how.resume or RunFolder(given["out"]).last)
        result = train(resume_config(path, **given), resume=path, progress=how.progress)
    else:
        result = train(TrainConfig.from_dict({}, **given), progress=how.progress, overwrite=how.overwrite)
    if result.best_miou is not None:
        print(f"best val mIoU {result.best_miou:.4f} ({result.best_checkpoint}); "
              f"last {result.last_checkpoint} at step {result.iterations}")
    return 0


COMMAND = Command(
    name="train",
    alias="fornet-train",
    summary="train a FoR-Net on a Cityscapes-layout data set (CPU, one GPU, or torchrun DDP)",
    description="Train a FoR-Net on a Cityscapes-layout data set (train split; val split for mIoU). "
                "Multi-GPU: torchrun --nproc-per-node N -m fornet train ...",
    add_arguments=add_arguments,
    run=run,
    epilog="Example: fornet-train --data D --variant lite --crop 256x256 --batch 8 --iters 300 "
           "--val-every 100 --out RUN. Continue an interrupted run with: fornet-train --out RUN --resume",
)
main = COMMAND.alias_main
