"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or a full disk never leaves a half-written checkpoint, ONNX file or report under the
final name. The temporary file is removed on every exit path Python sees (exceptions, Ctrl-C,
and SIGTERM in the ``fornet`` commands, which turn it into ``SystemExit``); one left behind by
a process that was killed outright (SIGKILL, power loss) carries that process's id in its name
and is removed by the next write of the same target once that process is gone. Published files
get the permissions a plain ``open()`` would give them (``0666`` less the umask), not the
``0600`` of :func:`tempfile.mkstemp`, and published folders those of a plain ``mkdir`` (``0777`` less
the umask), not the ``0700`` of :func:`tempfile.mkdtemp`, so a service or teammate running as another
user (a Triton server, a DeepStream application) can read them: one rule for every output.

Files that grow while a command runs (a video, per-frame records) use the same temporary names
(:func:`temporary_file`, then :func:`publish`), so a run killed outright leaves nothing that the
next run into the same file does not remove.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fornet.errors import FornetError
from fornet.faults import fault_point


def _process_umask() -> int:
    """The process umask (read without changing it where /proc allows, as threads may be running)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def published_mode() -> int:
    """The mode a newly created file gets: ``0666`` less the current umask."""
    return 0o666 & ~_process_umask()


def published_dir_mode() -> int:
    """The mode a newly created folder gets: ``0777`` less the current umask."""
    return 0o777 & ~_process_umask()


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and check that files can be written into it."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise FornetError(f"output directory {path} is a file; choose a directory (or remove the file)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FornetError(f"cannot create output directory {path}: {exc.strerror}; "
                          "choose a writable location") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise FornetError(f"output directory {path} is not writable; "
                          "choose another directory or fix its permissions")
    return path


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: Path, flag: str) -> None:
    """``path`` does not exist yet: its nearest existing ancestor must be a writable directory."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise FornetError(f"{flag} {path}: {ancestor} is a file, not a directory; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise FornetError(f"{flag} {path}: {ancestor} is not writable; choose another path or fix its permissions")


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Check, before any work, that a file can be written at ``path`` (named ``flag`` in errors).

    Raises:
        FornetError: ``path`` is a directory, or its folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        example = path / f"result{path.suffix or '.json'}"
        raise FornetError(f"{flag} {path} is a directory; pass a file path (e.g. {example})")
    if path.exists():
        if not os.access(path.parent if str(path.parent) else ".", os.W_OK | os.X_OK):
            raise FornetError(f"{flag} {path}: its folder is not writable; choose another path")
    else:
        _check_creatable(path, flag)
    return path


def check_output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """Check, before any work, that files can be written into the folder ``path``.

    Raises:
        FornetError: ``path`` is a file, or it cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FornetError(f"{flag} {path} is a file; pass a folder (or remove the file)")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise FornetError(f"{flag} {path} is not writable; choose another folder or fix its permissions")
    else:
        _check_creatable(path, flag)
    return path


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}."


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temporaries_of(target: str | os.PathLike[str]) -> list[Path]:
    """The temporary files of ``target`` in its folder (``.<target name>.<pid>.*.tmp``), of any process.

    The name is matched literally, so a name with ``*`` or ``[`` cannot reach other files.
    """
    target = Path(target)
    with contextlib.suppress(OSError):
        return sorted(target.parent.glob(f"{glob.escape(_temporary_prefix(target))}*.tmp"))
    return []


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files of ``target`` left by processes that no longer run; return them.

    Only :func:`temporaries_of` ``target`` are candidates; a link is removed itself, never what it
    points to.
    """
    prefix = _temporary_prefix(Path(target))
    removed = []
    for candidate in temporaries_of(target):
        pid = candidate.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def temporary_file(target: str | os.PathLike[str]) -> Path:
    """A new, empty temporary file for ``target`` in its folder, named with this process's id.

    Stale temporary files of ``target`` (of processes that no longer run) are removed first. The
    caller writes it, then :func:`publish` renames it onto ``target`` (or the caller removes it).

    Raises:
        FornetError: ``target`` is a directory, or its folder cannot be created or written.
    """
    target = Path(target)
    directory = ensure_writable_dir(target.parent if str(target.parent) else ".")
    if target.is_dir():
        raise FornetError(f"{target} is a directory; pass a file path to write to")
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{_temporary_prefix(target)}{os.getpid()}.", suffix=".tmp",
                                    dir=directory)
    os.close(fd)
    return Path(tmp_name)


def publish(tmp: Path, target: str | os.PathLike[str]) -> None:
    """Give the finished temporary file ``tmp`` the published mode and rename it onto ``target``."""
    os.chmod(tmp, published_mode())
    fault_point(f"atomic.{Path(target).name}")
    os.replace(tmp, target)


def temporary_dir(target: str | os.PathLike[str], role: str) -> Path:
    """A new folder ``.<target name>.<role>-*`` beside ``target``, with the published folder mode.

    It is meant to be renamed onto ``target`` (or to hold what is moved aside) once complete.
    """
    target = Path(target)
    parent = ensure_writable_dir(target.parent if str(target.parent) else ".")
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.{role}-", dir=parent))
    os.chmod(folder, published_dir_mode())
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    tmp = temporary_file(target)
    try:
        yield tmp
        publish(tmp, target)
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
