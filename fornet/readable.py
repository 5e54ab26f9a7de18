"""Files this user may not read (a ``0600`` checkpoint or model of another user): one message, with the fix.

Every command opens models, checkpoints and sidecars through paths that call :func:`check_readable`
(or use :func:`unreadable_message` for their own error type), so a permission problem is reported
as such, naming the file, its owner and mode and the fix, never as a traceback or as a "damaged
file, export it again".
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from fornet.errors import FornetError


class UnreadableFileError(FornetError):
    """A file exists but the user running the command may not read it."""


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def unreadable_message(path: str | os.PathLike[str], what: str) -> str:
    """``<what> <path> cannot be read by user X (owner Y, mode 0600): ...`` with the fix."""
    source = Path(path)
    try:
        info = source.stat()
    except PermissionError:
        return (f"{what} {source} cannot be reached by user {_user(os.geteuid())}: a folder on its path does not "
                f"let this user in; give the user access to the folders (chmod a+x) or run as a user who can")
    return (f"{what} {source} cannot be read by user {_user(os.geteuid())} (owner {_user(info.st_uid)}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}): give this user read access (e.g. `chmod a+r {source}`), copy the "
            "file to where the user can read it, or run the command as its owner")


def check_readable(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` if this process can open it for reading.

    Raises:
        UnreadableFileError: permission denied (the message names the file, owner, mode and fix).
    """
    source = Path(path)
    try:
        with open(source, "rb"):
            pass
    except PermissionError as exc:
        raise UnreadableFileError(unreadable_message(source, what)) from exc
    return source
