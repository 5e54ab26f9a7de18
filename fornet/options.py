"""Options dataclasses that declare their own command-line flags, declared once.

A field of an options dataclass carries its flag in its metadata (:func:`option`); a command adds
every declared field to its parser with :func:`add_options` and reads the parsed namespace back
with :func:`options_from_args`. Flag name, type, default, choices, metavar, help and argument group
therefore live beside the field they set, and ``--help`` shows the field's own default.

Example::

    @dataclass(frozen=True)
    class Options:
        size: tuple[int, int] = option((512, 1024), flag="--size", parse=hw_arg, metavar="HxW",
                                       help="input size", group=GRAPH)
        verify: bool = option(True, flag="--no-verify", help="skip the verification")

    add_options(parser, Options)                  # --size HxW, --no-verify
    options = options_from_args(Options, parser.parse_args(argv))

A ``bool`` field gets a switch: ``--no-...`` flags negate (the field is True unless given), other
flags set it. Flags whose command-line form differs from the field (percentages, ``--io fp16``
for ``io_fp16=True``) give ``parse`` (text -> value, as argparse's ``type``) or ``convert``
(parsed value -> field value). Nested options dataclasses are composed by the command.
Only the standard library is imported here: every layer may declare options.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Metadata key under which a field's :class:`Flag` is stored.
FLAG_KEY = "fornet.option"


def parse_hw(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``"512x1024"``) into ``(H, W)``; raise ``ValueError`` otherwise."""
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"expected HxW such as 512x1024, got {text!r}")
    h, w = (int(p) for p in parts)
    if h <= 0 or w <= 0:
        raise ValueError(f"height and width must be positive, got {text!r}")
    return h, w


def hw_arg(text: str) -> tuple[int, int]:
    """``argparse`` type for ``HxW`` options: :func:`parse_hw` with argparse's error reporting."""
    try:
        return parse_hw(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: What ``--device`` takes, in every command.
DEVICE_METAVAR = "auto|cpu|cuda|cuda:N"


def parse_device(value: int | str) -> str:
    """The canonical form of a device: ``"auto"``, ``"cpu"`` or ``"cuda:N"``.

    ``cuda`` means ``cuda:0`` and a bare GPU index ``N`` (an int or its text) means ``cuda:N``, so
    ``--device 1``, ``--device cuda:1`` and ``device=1`` name the same GPU. Raises ``ValueError`` otherwise.
    """
    text = str(value).strip().lower()
    if text in ("auto", "cpu"):
        return text
    if text == "cuda":
        return "cuda:0"
    index = text.removeprefix("cuda:")
    if index.isdigit() and (index != text or text.isdigit()):
        return f"cuda:{int(index)}"
    raise ValueError(f"expected a device (auto, cpu, cuda, cuda:N, or a GPU index N), got {value!r}")


def device_arg(text: str) -> str:
    """``argparse`` type of ``--device``: :func:`parse_device` with argparse's error reporting."""
    try:
        return parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cuda_index(device: str) -> int:
    """The GPU index of a canonical ``"cuda:N"`` device (0 for ``"auto"``)."""
    return 0 if device == "auto" else int(device.removeprefix("cuda:"))


def count_arg(text: str) -> int:
    """``argparse`` type of a count: a non-negative integer."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def alpha_arg(text: str) -> float:
    """``argparse`` type of ``--alpha``: an opacity in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected an opacity between 0 and 1, got {text!r}")
    return value


def positive_int_arg(text: str) -> int:
    """``argparse`` type of a positive count (a batch, threads)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def positive_float_arg(text: str) -> float:
    """``argparse`` type of a positive number (seconds, a frame rate)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def seconds_arg(text: str) -> float:
    """``argparse`` type of a duration in seconds: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def percentage(upper: float | None = 100.0) -> Callable[[str], float]:
    """``argparse`` type for a percentage in ``(0, upper]`` (no bound when None), returned as a fraction."""
    what = "a positive percentage" if upper is None else f"a percentage in (0, {upper:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (value > 0.0 and (upper is None or value <= upper)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value / 100.0

    return parse


#: ``argparse`` type for a percentage in (0, 100], as a fraction (``99.9`` -> ``0.999``).
percent_arg = percentage()


def format_hw(size: tuple[int, int]) -> str:
    """``(512, 1024)`` -> ``"512x1024"`` (the inverse of :func:`parse_hw`)."""
    return "{}x{}".format(*size)


#: ``--json`` without a file (or ``--json -``): the record goes to stdout.
STDOUT = Path("-")


def json_option(help: str, group: OptionGroup | None = None) -> Any:
    """The ``--json [FILE]`` field of a command that can write its record as JSON (FILE, or stdout)."""
    return option(None, flag="--json", parse=Path, nargs="?", const=STDOUT, metavar="FILE", group=group,
                  help=f"{help}, into FILE, or on stdout without FILE (then the text goes to stderr)")


@dataclass(frozen=True)
class OptionGroup:
    """An argument group of ``--help``: its title and optional description, declared once.

    ``exclusive`` makes a mutually exclusive group instead (no title; ``required``: one flag must be given).
    """

    title: str | None = None
    description: str | None = None
    exclusive: bool = False
    required: bool = False

    def make(self, parser: argparse.ArgumentParser) -> Any:
        """Add this group to ``parser``."""
        if self.exclusive:
            return parser.add_mutually_exclusive_group(required=self.required)
        return parser.add_argument_group(self.title, self.description)


@dataclass(frozen=True)
class Flag:
    """How one field appears on the command line (see :func:`option`)."""

    flag: str
    help: str
    parse: Callable[[str], Any] | None = None
    convert: Callable[[Any], Any] | None = None
    choices: Sequence[Any] | None = None
    metavar: str | tuple[str, ...] | None = None
    nargs: int | str | None = None
    group: OptionGroup | None = None
    required: bool = False
    default_text: str | None = None
    action: type[argparse.Action] | str | None = None
    const: Any = None
    flag_default: Any = None
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        """The namespace attribute argparse stores the flag's value in."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def negates(self) -> bool:
        """A ``--no-...`` switch of a field that is True by default."""
        return self.flag.startswith("--no-")


def option(default: Any = MISSING, *, flag: str, help: str, default_factory: Any = MISSING,
           **how: Any) -> Any:
    """A dataclass field with a command-line flag.

    Args:
        default: the field's default (also the flag's); omit for a required field.
        flag: the flag (``--input-size``); ``--no-x`` on a bool field is a negating switch.
        help: what the flag does; ``(default: X)`` is appended from the default.
        default_factory: as :func:`dataclasses.field`'s.
        **how: the remaining :class:`Flag` attributes (``parse``, ``convert``, ``choices``,
            ``metavar``, ``nargs``, ``group``, ``required``, ``action``, ``const``,
            ``flag_default``: the flag's default when its form differs from the field's (``convert``
            turns it into the field's), and ``default_text``: the default as ``--help`` shows it,
            ``""`` for none).
    """
    metadata = {FLAG_KEY: Flag(flag=flag, help=help, **how)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def declared_flags(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    """The fields of ``cls`` that declare a flag, in declaration order."""
    return [(f, f.metadata[FLAG_KEY]) for f in fields(cls) if FLAG_KEY in f.metadata]


def field_default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value (None for a required field)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _default_text(spec: Flag, default: Any) -> str:
    if spec.default_text is not None:
        return spec.default_text
    if default is None or isinstance(default, bool) or spec.required:
        return ""
    if isinstance(default, tuple) and spec.parse is hw_arg:
        return format_hw(default)
    if isinstance(default, tuple):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
    return str(default)


def help_text(spec: Flag, default: Any) -> str:
    """The flag's help with ``(default: X)`` appended when there is a default worth showing."""
    shown = _default_text(spec, default)
    text = spec.help.replace("%", "%%")
    return f"{text} (default: {shown})" if shown else text


def option_groups(parser: argparse.ArgumentParser, *groups: OptionGroup) -> dict[OptionGroup, Any]:
    """Make ``groups`` on ``parser`` in this order (``--help`` lists groups in the order they are made)."""
    return {group: group.make(parser) for group in groups}


def add_options(parser: argparse.ArgumentParser, cls: type, groups: dict[OptionGroup, Any] | None = None,
                *, suppress: bool = False, only: Sequence[str] | None = None,
                aliases: dict[str, Sequence[str]] | None = None, required: Sequence[str] | None = None) -> None:
    """Add an argument for every field of ``cls`` that declares a flag.

    Args:
        parser: the parser to extend.
        cls: an options dataclass.
        groups: argument groups already made, by :class:`OptionGroup`; new ones are made on the
            parser and recorded here, so that several classes can share a group.
        suppress: leave flags that are not given out of the namespace (``argparse.SUPPRESS``),
            for commands that tell "not given" apart from "given the default".
        only: the names of the fields to add (default: every field that declares a flag), for a
            command that takes part of a shared options class.
        aliases: more flags per field name, for a command whose users know a flag by another
            name (``{"path": ["--engine"]}``); ``--help`` shows them beside the flag.
        required: field names whose flag this command requires (or, with a default, no longer requires).
    """
    groups = {} if groups is None else groups
    for f, spec in declared_flags(cls):
        if only is not None and f.name not in only:
            continue
        if required is not None:
            spec = dataclasses.replace(spec, required=f.name in required)
        target: Any = parser
        if spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = spec.group.make(parser)
            target = groups[spec.group]
        default = field_default(f) if spec.flag_default is None else spec.flag_default
        kwargs: dict[str, Any] = {"dest": spec.dest, "help": help_text(spec, default)}
        if spec.action is None and f.type in (bool, "bool"):
            kwargs["action"] = "store_true"
        else:
            kwargs.update(action=spec.action, const=spec.const, type=spec.parse, choices=spec.choices,
                          metavar=spec.metavar, nargs=spec.nargs, required=spec.required or None)
            if not spec.required:
                kwargs["default"] = default
        if suppress:
            kwargs["default"] = argparse.SUPPRESS
        names = [spec.flag, *spec.aliases, *(aliases or {}).get(f.name, ())]
        target.add_argument(*names, **{k: v for k, v in kwargs.items() if v is not None})


def _value(spec: Flag, parsed: Any) -> Any:
    if spec.negates:
        return not parsed
    return spec.convert(parsed) if spec.convert is not None else parsed


def given_options(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """Field values of the flags present in ``args`` (all of them, unless added with ``suppress``)."""
    return {f.name: _value(spec, getattr(args, spec.dest)) for f, spec in declared_flags(cls)
            if hasattr(args, spec.dest)}


def options_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The ``cls`` instance the parsed flags describe; ``overrides`` set the other fields (or replace)."""
    return cls(**{**given_options(cls, args), **overrides})


def to_argv(options: Any) -> list[str]:
    """The flags that give ``options`` (an options dataclass) from a parser made by :func:`add_options`.

    Fields at their defaults are left out; fields whose flag needs ``convert`` cannot be spelled back.
    """
    argv: list[str] = []
    for f, spec in declared_flags(type(options)):
        value = getattr(options, f.name)
        if value == field_default(f):
            continue
        if spec.convert is not None or spec.action is not None:
            raise ValueError(f"{spec.flag} cannot be spelled from the value {value!r}")
        if isinstance(value, bool):
            argv.append(spec.flag)
        elif isinstance(value, tuple) and spec.parse is hw_arg:
            argv += [spec.flag, format_hw(value)]
        elif isinstance(value, tuple):
            argv += [spec.flag, *map(str, value)]
        else:
            argv += [spec.flag, str(value)]
    return argv
