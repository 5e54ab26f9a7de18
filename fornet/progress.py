"""When long work shows progress, and the one-line status of its steps.

Progress (tqdm bars and step lines, on stderr) is shown on a terminal and never in logs or
pipes, nor with ``--quiet``. ``FORNET_PROGRESS=1`` forces it where stderr is not a terminal (a CI
log that wants it, or a test); ``FORNET_PROGRESS=0`` turns it off everywhere.
"""

from __future__ import annotations

import os
import sys

PROGRESS_ENV = "FORNET_PROGRESS"


def progress_wanted(requested: bool = True) -> bool:
    """Whether to show progress: ``requested`` (no ``--quiet``) and stderr is a terminal, unless the
    environment variable :data:`PROGRESS_ENV` says ``1`` (always) or ``0`` (never)."""
    forced = os.environ.get(PROGRESS_ENV)
    if not requested or forced == "0":
        return False
    return forced == "1" or sys.stderr.isatty()


class StatusLine:
    """Names each step of a long command on stderr (``fornet export: tracing the graph ...``), when shown."""

    def __init__(self, command: str, shown: bool) -> None:
        self.command = command
        self.shown = shown

    def __call__(self, step: str) -> None:
        """Say that ``step`` starts."""
        if self.shown:
            print(f"{self.command}: {step} ...", file=sys.stderr, flush=True)
