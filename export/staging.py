"""Whole-folder outputs (a Triton repository, a DeepStream package) that appear complete or not at all.

The folder is built in a hidden staging folder beside the target and renamed into place at the
end (with the mode of a plain ``mkdir``, as every output: :mod:`fornet.atomic`); an existing target
is refused unless ``overwrite``, and even then it is only swapped out (renamed aside, then removed)
after the new folder is complete, so it is never half-overwritten.

Every such folder holds a marker record, ``.fornet-package.json``, naming what wrote it. Replacing
removes the whole target, so ``overwrite`` replaces only an empty folder or one whose marker says it
is a package of the same kind: ``--replace-packages`` pointed at a project folder, the export folder
or a home folder by mistake is refused, and nothing is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fornet.atomic import temporary_dir
from fornet.errors import RecordError
from fornet.export.errors import ExportError
from fornet.records import Record

MARKER_NAME = ".fornet-package.json"


class PackageMarkerError(RecordError, ExportError):
    """A package folder's marker cannot be read."""


@dataclass(frozen=True)
class PackageMarker(Record):
    """``.fornet-package.json``: the kind of package a folder holds (a Triton repository, a DeepStream package)."""

    FORMAT: ClassVar[str] = "fornet-deploy/package"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy package marker"
    FIX: ClassVar[str] = "the folder is not replaced: remove it yourself or choose another folder"
    ERROR: ClassVar[type[RecordError]] = PackageMarkerError
    kind: str


def check_target(target: str | os.PathLike[str], overwrite: bool, kind: str) -> None:
    """Refuse a ``target`` that cannot become a ``kind`` package (see the module docstring).

    Raises:
        ExportError: ``target`` is a file; it exists and ``overwrite`` is off; or it is a non-empty
            folder that is not a ``kind`` package written by fornet-deploy.
    """
    target = Path(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ExportError(f"{target} exists and is not a folder; choose another output path")
    if not target.exists():
        return
    if not overwrite:
        raise ExportError(f"{target} already exists; choose a new folder, or pass --replace-packages to replace it "
                          "(it is replaced only once the new one is complete)")
    if not any(target.iterdir()):
        return
    marker = target / MARKER_NAME
    if not marker.is_file():
        raise ExportError(f"{target} is not a {kind} written by fornet export (it has no {MARKER_NAME}), so it is "
                          f"not replaced: everything in it would be deleted; remove it yourself or choose another "
                          "folder")
    found = PackageMarker.load(marker).kind
    if found != kind:
        raise ExportError(f"{target} holds a {found}, not a {kind}, so it is not replaced; choose another folder")


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], kind: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``target`` (with its ``kind`` marker); on an
    exception it is removed.

    Raises:
        ExportError: see :func:`check_target`.
    """
    target = Path(target)
    check_target(target, overwrite, kind)
    staging = temporary_dir(target, "staging")
    try:
        yield staging
        PackageMarker(kind).save(staging / MARKER_NAME)
        if target.exists():
            aside = temporary_dir(target, "old")
            os.replace(target, aside / target.name)
            os.replace(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
