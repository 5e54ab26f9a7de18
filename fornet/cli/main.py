"""``fornet``: one command with subcommands, in the manner of ``polygraphy <tool>`` and ``yolo <mode>``.

Each subcommand is a module of :mod:`fornet.cli` holding ``COMMAND`` (a :class:`~fornet.cli.command.Command`);
the ``fornet-<name>`` console scripts are aliases that run the same code with the same parser.
A new command: write ``fornet/cli/<name>.py`` with ``COMMAND`` and ``main = COMMAND.alias_main``,
add its module name to :data:`COMMAND_MODULES`, and its alias to ``[project.scripts]``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fornet import __version__
from fornet.cli.command import Command

#: The subcommands, in the order ``fornet --help`` lists them (data -> train -> ... -> serve).
COMMAND_MODULES = ("data", "train", "eval", "info", "export", "build", "build_plugin", "bench", "serve", "run")


def commands() -> list[Command]:
    """Every subcommand (imports only the light command modules; heavy libraries load on use)."""
    return [importlib.import_module(f"fornet.cli.{name}").COMMAND for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    """The ``fornet`` parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="fornet",
        description="Train, export and deploy FoR-Net semantic segmentation (ONNX Runtime, TensorRT, PyTorch).",
        epilog="Run `fornet <command> --help` for a command's options. Every command is also installed as "
               "fornet-<command> (e.g. fornet-export).",
    )
    parser.add_argument("--version", action="version", version=f"fornet-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for command in commands():
        command.configure(sub.add_parser(command.name, help=command.summary))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fornet``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    command = next(c for c in commands() if c.name == args.command)
    return command.execute(args, arguments[arguments.index(args.command) + 1:])


if __name__ == "__main__":
    raise SystemExit(main())
