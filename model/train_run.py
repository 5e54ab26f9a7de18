"""The run folder: ``config.json``, ``train.log``, ``metrics.jsonl`` and the checkpoint names.

Only the main process touches it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.model.errors import ModelError
from fornet.model.train_config import TrainConfig, TrainConfigError, run_differences

LOGGER_NAME = "fornet.train"


class RunFolderError(ModelError):
    """The run folder holds a different run, or cannot be used."""


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
        """The configuration in ``config.json``, or None when there is none."""
        if not self.config.is_file():
            return None
        try:
            return TrainConfig.from_dict(json.loads(self.config.read_text(encoding="utf-8")))
        except (ValueError, TrainConfigError) as exc:
            raise RunFolderError(f"{self.config} is not a valid run configuration ({exc}); "
                                 "choose another --out or delete that file") from exc

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
        write_text_atomic(self.config, json.dumps(config.to_dict(), indent=2) + "\n")
        if not resuming:
            write_text_atomic(self.metrics, "")

    def truncate_metrics(self, after: int) -> None:
        """Drop ``metrics.jsonl`` records of steps after ``after`` (written after the checkpoint
        that a resumed run restarts from)."""
        if not self.metrics.is_file():
            return
        kept = [line for line in self.metrics.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("iter", 0) <= after]
        write_text_atomic(self.metrics, "".join(f"{line}\n" for line in kept))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON record (non-finite floats become null)."""
        clean = {k: _json_safe(v) for k, v in record.items()}
        with self.metrics.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class _TqdmHandler(logging.Handler):
    """Console log lines that do not break a running tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

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
