"""What one ``fornet`` subcommand is: its name, its console-script alias, its arguments and its work.

Every command module in :mod:`fornet.cli` defines ``COMMAND = Command(...)`` and ``main =
COMMAND.alias_main``; :mod:`fornet.cli.main` lists the modules. The same parser serves
``fornet <name>`` and the ``fornet-<name>`` alias, so their ``--help`` texts say the same.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fornet.errors import FornetError
from fornet.redact import mask_credentials


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-line paragraphs of the description and epilog; keeps multi-line ones (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(HelpFormatter, self)._fill_text(part, width, indent) if "\n" not in part
                           else "\n".join(indent + line for line in part.splitlines())
                           for part in text.strip("\n").split("\n\n"))


#: ``run(args, argv)``: argv is what the user typed after the command name (for "command" records).
Runner = Callable[[argparse.Namespace, list[str]], int]


@dataclass(frozen=True)
class Command:
    """One subcommand of ``fornet``.

    Attributes:
        name: the subcommand (``fornet export``).
        alias: the console script that runs the same command (``fornet-export``).
        summary: one line for ``fornet --help``.
        description: the paragraph at the top of the command's ``--help``.
        add_arguments: declares the command's arguments on a parser.
        run: does the work; returns the exit status.
        epilog: examples printed after the options (kept as written).
    """

    name: str
    alias: str
    summary: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Runner
    epilog: str | None = None

    def configure(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Give ``parser`` this command's description, epilog and arguments."""
        parser.description = self.description
        parser.epilog = self.epilog
        parser.formatter_class = HelpFormatter
        self.add_arguments(parser)
        return parser

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        """A stand-alone parser (the alias's); ``prog`` defaults to the alias."""
        return self.configure(argparse.ArgumentParser(prog=prog or self.alias))

    def execute(self, args: argparse.Namespace, argv: list[str]) -> int:
        """Run with parsed arguments; a :class:`FornetError` becomes ``error: ...`` and status 2."""
        return run_friendly(self.run, args, argv)

    def alias_main(self, argv: Sequence[str] | None = None) -> int:
        """Entry point of the console-script alias (``fornet-export ...``)."""
        arguments = list(sys.argv[1:] if argv is None else argv)
        return self.execute(self.parser().parse_args(arguments), arguments)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so ``finally`` blocks remove temporary files."""
    raise SystemExit(128 + signum)


def run_friendly(work: Callable[..., int], *args: object) -> int:
    """Call ``work``; turn :class:`FornetError` into ``error: <message>`` (status 2, passwords in URLs masked) and
    Ctrl-C into 130.

    In the main thread SIGTERM becomes :class:`SystemExit` (status 143), so a terminated command
    unwinds: temporary files are removed and nothing half-written is published.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return work(*args)
    except FornetError as exc:
        print(f"error: {mask_credentials(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def friendly_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Decorator form of :func:`run_friendly` for scripts outside the ``fornet`` command (benchmarks/)."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> int:
        return run_friendly(functools.partial(main, **kwargs), *args)

    return wrapper
