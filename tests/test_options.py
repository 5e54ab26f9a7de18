"""fornet.options: flags declared on dataclass fields, HxW and percentage parsing."""

from __future__ import annotations

import argparse
import operator
from dataclasses import dataclass

import pytest

from fornet.options import (
    OptionGroup,
    add_options,
    given_options,
    hw_arg,
    option,
    options_from_args,
    parse_hw,
    percentage,
    to_argv,
)

GROUP = OptionGroup("sizes", "what the sizes mean")


@dataclass(frozen=True)
class Sample:
    size: tuple[int, int] = option((8, 16), flag="--size", parse=hw_arg, metavar="HxW", group=GROUP, help="a size")
    name: str = option("a", flag="--name", choices=("a", "b"), help="a name")
    check: bool = option(True, flag="--no-check", help="skip the check")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, help="no progress")
    share: float = option(0.5, flag="--share", parse=percentage(), default_text="50", help="a share, in %")


def _parser(**how: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sample")
    add_options(parser, Sample, **how)
    return parser


def test_parse_hw() -> None:
    assert parse_hw("512x1024") == (512, 1024) and parse_hw("2*3") == (2, 3)
    for bad in ("512", "0x4", "ax4", "1x2x3"):
        with pytest.raises(ValueError):
            parse_hw(bad)


def test_percentage_bounds() -> None:
    assert percentage()("99.9") == pytest.approx(0.999)
    assert percentage(None)("250") == 2.5
    for bad in ("0", "101", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"percentage in \(0, 100\]"):
            percentage()(bad)


def test_defaults_help_and_groups() -> None:
    text = _parser().format_help()
    assert "a size (default: 8x16)" in text and "a name (default: a)" in text
    assert "a share, in % (default: 50)" in text and "sizes:\n  what the sizes mean" in text
    assert options_from_args(Sample, _parser().parse_args([])) == Sample()


def test_flags_set_every_field_and_spell_back() -> None:
    args = _parser().parse_args(["--size", "4x6", "--name", "b", "--no-check", "--quiet", "--share", "10"])
    assert options_from_args(Sample, args) == Sample((4, 6), "b", False, False, 0.1)
    assert to_argv(Sample(size=(4, 6), name="b", check=False)) == ["--size", "4x6", "--name", "b", "--no-check"]
    with pytest.raises(ValueError, match="--quiet"):
        to_argv(Sample(progress=False))


def test_suppressed_flags_stay_out_unless_given() -> None:
    args = _parser(suppress=True).parse_args(["--name", "b"])
    assert given_options(Sample, args) == {"name": "b"}
    assert options_from_args(Sample, args, size=(2, 2)) == Sample(size=(2, 2), name="b")
