"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or a full disk never leaves a half-written checkpoint, ONNX file or report
under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fornet.errors import FornetError


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and check that files can be written into it."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FornetError(f"cannot create output directory {path}: {exc.strerror}; "
                          "choose a writable location") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise FornetError(f"output directory {path} is not writable; "
                          "choose another directory or fix its permissions")
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    directory = ensure_writable_dir(target.parent if str(target.parent) else ".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))
