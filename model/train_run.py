"""The run folder: ``config.json``, ``train.log``, ``metrics.jsonl`` and the checkpoint names.

``config.json`` is a :class:`RunConfigFile` record and every line of ``metrics.jsonl`` a
:class:`MetricsLine` record (:mod:`fornet.records`). Only the main process touches the folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from tqdm import tqdm

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.errors import RecordError
from fornet.model.errors import ModelError
from fornet.model.train_config import TrainConfig, run_differences
from fornet.records import LineRecord, Record

LOGGER_NAME = "fornet.train"


class RunFolderError(ModelError):
    """The run folder holds a different run, or cannot be used."""


class RunRecordError(RecordError, RunFolderError):
    """A file of the run folder (``config.json``, ``metrics.jsonl``) is unreadable, damaged or foreign."""


@dataclasses.dataclass(frozen=True)
class RunConfigFile(Record):
    """``RUN/config.json``: the run's configuration (:class:`TrainConfig`).

    Version 1 files (written before the format tag) hold the configuration's fields at the top level.
    """

    FORMAT: ClassVar[str] = "fornet-deploy/train-config"
    VERSION: ClassVar[int] = 2
    UNTAGGED_VERSION: ClassVar[int | None] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy run configuration"
    FIX: ClassVar[str] = "choose another --out or delete that file"
    ERROR: ClassVar[type[RecordError]] = RunRecordError

    config: TrainConfig

    @classmethod
    def upgrade(cls, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """Version 1: the configuration itself."""
        return {"config": body} if version == 1 else None


@dataclasses.dataclass(frozen=True)
class MetricsLine(LineRecord):
    """One line of ``RUN/metrics.jsonl``: a window of training steps (``kind`` ``train``: learning rate,
    seconds per step and the loss terms) or a validation (``val``: mIoU and per-class IoU).

    Non-finite values (a diverged loss, a class absent from both prediction and ground truth) are
    recorded as None (JSON ``null``); fields of the other kind are left out of the line.
    """

    FORMAT: ClassVar[str] = "fornet-deploy/train-metrics"
    VERSION: ClassVar[int] = 1
    #: Lines written before the format tag have the same fields.
    UNTAGGED_VERSION: ClassVar[int | None] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy training metrics line"
    FIX: ClassVar[str] = ("resume from a run folder that fornet train wrote, or pass --overwrite to start over "
                          "(its checkpoints and metrics are replaced)")
    ERROR: ClassVar[type[RecordError]] = RunRecordError
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("lr", "s_per_iter", "loss", "ce", "dice", "sel", "miou", "iou")

    iter: int
    kind: Literal["train", "val"]
    lr: float | None = None
    s_per_iter: float | None = None
    loss: float | None = None
    ce: float | None = None
    dice: float | None = None
    sel: float | None = None
    miou: float | None = None
    iou: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float):
                object.__setattr__(self, field.name, _finite(value))
            elif isinstance(value, tuple):
                object.__setattr__(self, field.name, tuple(_finite(v) for v in value))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class RunFolder:
    """Paths and files of one run folder."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out)
        self.config = self.path / "config.json"
        self.last = self.path / "last.pth"
        self.best = self.path / "best.pth"
        self.log = self.path / "train.log"
        self.metrics = self.path / "metrics.jsonl"

    def saved_config(self) -> TrainConfig | None:
        """The configuration in ``config.json``, or None when there is none.

        Raises:
            RunRecordError: a ``config.json`` that is not a valid run configuration.
        """
        if not self.config.is_file():
            return None
        return RunConfigFile.load(self.config).config

    def holds_run(self) -> bool:
        """Whether the folder holds work of a run: a checkpoint or metrics records."""
        metrics = self.metrics.is_file() and self.metrics.stat().st_size > 0
        return metrics or self.last.exists() or self.best.exists()

    def check_fresh_start(self, config: TrainConfig, overwrite: bool = False) -> None:
        """Refuse to start a new run in a folder that holds a run, unless ``overwrite``."""
        if overwrite:
            return
        old = self.saved_config()
        diffs = run_differences(old, config) if old is not None else []
        if diffs:
            raise RunFolderError(
                f"{self.path} already holds a run with a different configuration ({'; '.join(diffs)}); "
                f"pass --resume to continue that run with its own options, choose another --out, "
                f"or pass --overwrite to start over (its checkpoints and metrics are replaced)"
            )
        if self.holds_run():
            raise RunFolderError(
                f"{self.path} already holds a run (last.pth, best.pth or metrics.jsonl); pass --resume to continue "
                "it, --overwrite to start over (its checkpoints and metrics are replaced), or choose another --out"
            )

    def prepare(self, config: TrainConfig, resuming: bool) -> None:
        """Create the folder, write ``config.json``; a fresh run also empties ``metrics.jsonl``."""
        ensure_writable_dir(self.path)
        RunConfigFile(config).save(self.config)
        if not resuming:
            write_text_atomic(self.metrics, "")

    def truncate_metrics(self, after: int) -> None:
        """Drop ``metrics.jsonl`` records of steps after ``after`` (written after the checkpoint
        that a resumed run restarts from)."""
        if not self.metrics.is_file():
            return
        kept = [line for line in MetricsLine.read_lines(self.metrics) if line.iter <= after]
        write_text_atomic(self.metrics, "".join(line.to_line() for line in kept))

    def append_metrics(self, line: MetricsLine) -> None:
        """Append one line to ``metrics.jsonl``."""
        with self.metrics.open("a", encoding="utf-8") as fh:
            fh.write(line.to_line())


class _TqdmHandler(logging.Handler):
    """Console log lines that do not break a running tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record))


@contextlib.contextmanager
def run_logger(folder: RunFolder | None, console: bool) -> Iterator[logging.Logger]:
    """The ``fornet.train`` logger writing to ``train.log`` (when ``folder`` is given) and the
    console (when ``console``), for the duration of the block."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handlers: list[logging.Handler] = []
    if folder is not None:
        file_handler = logging.FileHandler(folder.log, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    if console:
        handlers.append(_TqdmHandler())
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
