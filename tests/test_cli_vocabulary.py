"""One meaning per flag: every command's parser is walked and a flag name must have one type everywhere.

A flag's signature is its action (switch or value), its argument type, its choices, how many values it
takes and its metavar (what the value is: DIR, FILE, HxW, ...). Only ``--out`` may name a folder in one
command and a file in another (it always says where the command writes its result).
"""

from __future__ import annotations

import argparse
import collections

import pytest

from fornet.cli.main import commands

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
