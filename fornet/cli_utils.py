"""Small helpers shared by the command-line entry points."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from fornet.errors import FornetError

F = TypeVar("F", bound=Callable[..., int])


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


def friendly_errors(main: F) -> F:
    """Turn :class:`FornetError` into ``error: <message>`` on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return main(*args, **kwargs)
        except FornetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper  # type: ignore[return-value]
