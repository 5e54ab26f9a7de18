"""One meaning per flag: every command's parser is walked and a flag name must have one type everywhere.

A flag's signature is its action (switch or value), its argument type, its choices, how many values it
takes and its metavar (what the value is: DIR, FILE, HxW, ...). Only ``--out`` may name a folder in one
command and a file in another (it always says where the command writes its result).

Error messages name only real flags: every ``--flag`` in the text of a ``raise`` in the package's sources
must be a flag of a command that can meet that error (by source folder) or of a command the message names
(``fornet-data synth --out DIR``); messages once told users to pass ``--force`` for ``--replace-packages``.
"""

from __future__ import annotations

import argparse
import ast
import collections
import re

import pytest

from fornet.cli.main import commands
from fornet.paths import CHECKOUT_ROOT

#: Flags whose metavar may differ between commands, and why.
METAVAR_MAY_DIFFER = {"--out": "where the command writes: a folder, or a file for fornet build and fornet data video"}

#: Commands that open a model, with the flag each has always taken besides --model.
MODEL_COMMANDS = {"run": None, "serve": None, "bench": "--engine", "eval": "--ckpt", "info": "--engine",
                  "export": "--ckpt", "build": "--onnx"}


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(f"{name} {sub}", child)

    for command in commands():
        walk(command.name, command.parser())
    return found


def _signature(action: argparse.Action, flag: str) -> tuple[object, ...]:
    kind = type(action).__name__
    parse = getattr(action.type, "__qualname__", action.type)
    choices = tuple(action.choices) if action.choices is not None else None
    metavar = None if flag in METAVAR_MAY_DIFFER else action.metavar
    return kind, parse, choices, action.nargs, metavar


Signatures = dict[str, dict[tuple[object, ...], list[str]]]


Signatures = dict[str, dict[tuple[object, ...], list[str]]]


def flag_signatures(parsers: list[tuple[str, argparse.ArgumentParser]]) -> Signatures:
    """Flag -> signature -> the commands that declare the flag so."""
    table: Signatures = collections.defaultdict(lambda: collections.defaultdict(list))
    for name, parser in parsers:
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help", "--version"):
                    table[flag][_signature(action, flag)].append(name)
    return table


def test_every_flag_has_one_type_and_meaning_in_every_command() -> None:
    conflicts = {flag: dict(signatures) for flag, signatures in flag_signatures(_parsers()).items()
                 if len(signatures) > 1}
    assert not conflicts, "flags declared differently by different commands:\n" + "\n".join(
        f"{flag}: " + "; ".join(f"{sorted(names)} -> {sig}" for sig, names in signatures.items())
        for flag, signatures in conflicts.items())


def test_the_walk_sees_a_planted_conflict() -> None:
    """The check above can fail: a command declaring --device as a plain integer is caught."""
    planted = argparse.ArgumentParser(prog="planted")
    planted.add_argument("--device", type=int)
    table = flag_signatures([*_parsers(), ("planted", planted)])
    assert len(table["--device"]) == 2


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_model_commands_take_model_and_device_cuda(command: str) -> None:
    parser = dict(_parsers())[command]
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert "--model" in flags
    if MODEL_COMMANDS[command] is not None:
        assert MODEL_COMMANDS[command] in flags
        alias_action = next(a for a in parser._actions if "--model" in a.option_strings)
        assert MODEL_COMMANDS[command] in alias_action.option_strings, "the old flag is another name of --model"
    if command in ("run", "serve", "bench", "eval"):
        device = next(a for a in parser._actions if "--device" in a.option_strings)
        assert device.type("cuda:0") == "cuda:0" and device.type("1") == "cuda:1" and device.type("cpu") == "cpu"


#: The commands whose flags the error messages of each source folder may name (the first prefix that matches).
MESSAGE_AREAS = {
    "export/": ("export", "build", "build-plugin", "info"),
    "runtime/video/": ("run", "bench", "data"),
    "runtime/serving/": ("serve", "bench"),
    "runtime/bench/": ("bench",),
    "runtime/": ("run", "serve", "bench", "eval", "info", "build"),
    "model/": ("train", "eval", "export", "info", "bench", "run"),
    "calibration/": ("data", "train", "eval", "export", "bench"),
    "fornet/": (),  # core: any command's flags
}
#: Real flags that mean something else than the messages of a source folder would mean by them.
MISNAMED = {
    "runtime/video/": {"--backend": "the video reader is chosen with --input-backend; --backend is the model's"},
}
#: Flags of other programs that messages name.
FOREIGN_FLAGS = {"--list-devices": "v4l2-ctl", "--nproc-per-node": "torchrun"}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_COMMAND = re.compile(r"fornet[- ]([a-z][a-z-]*)")


def _command_flags() -> dict[str, set[str]]:
    flags: dict[str, set[str]] = collections.defaultdict(set)
    for name, parser in _parsers():
        flags[name.split()[0]].update(flag for action in parser._actions for flag in action.option_strings)
    return flags


def unknown_message_flags(source: str, area: str, flags: dict[str, set[str]]) -> list[str]:
    """``line: --flag in 'message'`` for each flag in a raised message of ``source`` that no command of ``area``
    (a :data:`MESSAGE_AREAS` key) nor a command named in the message has."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        texts = [c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
        named = {command for text in texts for command in _COMMAND.findall(text) if command in flags}
        allowed = set().union(*(flags[c] for c in (*(MESSAGE_AREAS[area] or flags), *named)))
        misnamed = MISNAMED.get(area, {})
        found += [f"{node.lineno}: {flag} in {text!r}" + (f" ({misnamed[flag]})" if flag in misnamed else "")
                  for text in texts for flag in _FLAG.findall(text)
                  if (flag not in allowed or flag in misnamed) and flag not in FOREIGN_FLAGS]
    return found


def test_error_messages_name_flags_that_exist() -> None:
    flags = _command_flags()
    unknown = []
    for top in ("fornet", "export", "runtime", "model", "calibration"):
        for path in sorted((CHECKOUT_ROOT / top).rglob("*.py")):
            relative = path.relative_to(CHECKOUT_ROOT).as_posix()
            area = next(prefix for prefix in MESSAGE_AREAS if relative.startswith(prefix))
            unknown += [f"{relative}:{line}" for line in unknown_message_flags(path.read_text(encoding="utf-8"), area,
                                                                              flags)]
    assert not unknown, "error messages name flags the commands that meet them do not have:\n" + "\n".join(unknown)


def test_the_message_scan_sees_a_planted_flag() -> None:
    """The scan can fail: --force in an export message (the flag is --replace-packages) and an invented flag."""
    flags = _command_flags()
    planted = ('raise ExportError(f"{folder} exists; pass --force to replace it")\n'
               'raise FornetError("use --frobnicate")\n'
               'raise ExportError("make data with `fornet-data synth --force`")\n')
    assert unknown_message_flags(planted, "export/", flags) == [
        "1: --force in ' exists; pass --force to replace it'", "2: --frobnicate in 'use --frobnicate'"]
    reader = 'raise SourceError("OpenCV cannot open it; try another backend (--backend pyav)")\n'
    assert unknown_message_flags(reader, "runtime/video/", flags) == [
        f"1: --backend in 'OpenCV cannot open it; try another backend (--backend pyav)' "
        f"({MISNAMED['runtime/video/']['--backend']})"]
