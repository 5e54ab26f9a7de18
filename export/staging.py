"""Whole-folder outputs (a Triton repository, a DeepStream package) that appear complete or not at all.

The folder is built in a hidden staging folder beside the target and renamed into place at the
end; an existing target is refused unless ``overwrite``, and even then it is only swapped out
(renamed aside, then removed) after the new folder is complete, so it is never half-overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fornet.atomic import ensure_writable_dir
from fornet.export.errors import ExportError


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``target``; on an exception it is removed.

    Raises:
        ExportError: ``target`` exists (and not ``overwrite``), or is a file.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder; choose another output path")
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; choose a new folder, or pass --force to replace it "
                          "(it is replaced only once the new one is complete)")
    parent = ensure_writable_dir(target.parent if str(target.parent) else ".")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=parent))
    try:
        yield staging
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.replace(target, aside / target.name)
            os.replace(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
