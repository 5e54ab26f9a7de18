"""Where a command's words and its JSON record go: ``--json FILE`` writes the record, ``--json`` alone
prints it on stdout and moves the words to stderr, so ``fornet bench ... --json | jq`` reads clean JSON."""

from __future__ import annotations

import sys
from pathlib import Path

from fornet.atomic import check_output_file
from fornet.options import STDOUT
from fornet.records import Record


class CommandOutput:
    """The text and the record of one command run (see the module docstring).

    Args:
        json_target: the ``--json`` value: None (no record), a file, or :data:`~fornet.options.STDOUT`.
    """

    def __init__(self, json_target: Path | None) -> None:
        self.json_target = json_target
        if json_target is not None and json_target != STDOUT:
            check_output_file(json_target, "--json")

    def say(self, text: str) -> None:
        """Print words for the user: stdout, or stderr when stdout carries the JSON record."""
        print(text, file=sys.stderr if self.json_target == STDOUT else sys.stdout, flush=True)

    def record(self, record: Record) -> None:
        """Write ``record`` where ``--json`` said (nothing without ``--json``)."""
        if self.json_target is None:
            return
        if self.json_target == STDOUT:
            sys.stdout.write(record.to_json())
            sys.stdout.flush()
            return
        self.say(f"wrote {record.save(self.json_target)}")
