"""Exports as transactions: stage every file, verify, then publish them together.

An export writes every file into ``<out>/.fornet-staging-<pid>/`` (same filesystem, so publishing
is a rename). Nothing in ``<out>`` changes until :meth:`ExportTransaction.commit`, which

1. writes the journal ``<out>/.fornet-publish.json`` (atomically: the commit point), naming the
   staged files to move in and the files of the previous export to remove (those the new export
   does not produce, so the folder never mixes two models);
2. renames the staged files onto their final names, removes the listed old files, removes the
   staging folder, and finally the journal.

A kill before the journal exists leaves the previous export untouched (the staging folder is
an orphan); a kill after it leaves a journal that the next :func:`recover` (run at the start of
every export into the folder) completes, since every step is idempotent. Until then a reader
that meets a half-published pair is refused by the sidecar's sha256 binding.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from fornet.atomic import pid_alive, remove_stale_temporaries
from fornet.errors import RecordError
from fornet.export.errors import ExportError
from fornet.faults import fault_point
from fornet.records import Record

STAGING_PREFIX = ".fornet-staging-"
JOURNAL_NAME = ".fornet-publish.json"
#: The only staging folder names a journal may name: ``.fornet-staging-<pid>``, directly in the export folder.
_STAGING_NAME = re.compile(rf"{re.escape(STAGING_PREFIX)}[0-9]+")


class JournalError(RecordError, ExportError):
    """The publication journal of an export folder cannot be read."""


@dataclass(frozen=True)
class PublishJournal(Record):
    """What a committed export publishes: staged files to move in, old files to remove."""

    FORMAT: ClassVar[str] = "fornet-deploy/export-journal"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy export journal"
    FIX: ClassVar[str] = ("delete it and the .fornet-staging-* folder beside it, then export again (the folder may "
                          "hold a half-published export until then)")
    ERROR: ClassVar[type[RecordError]] = JournalError
    staging: str
    publish: tuple[str, ...]
    remove: tuple[str, ...]

    def check(self, out: Path, managed: Collection[str]) -> None:
        """Refuse a journal that names anything but the export's own files and staging folder in ``out``.

        The journal is carried out by the next export into the folder, so what it names is deleted or
        replaced: only the names in ``managed`` (the files an export writes) and a
        ``.fornet-staging-<pid>`` folder directly inside ``out`` (not a link) are accepted.

        Raises:
            JournalError: naming the journal, what it names and how to clean up (nothing was touched).
        """
        foreign = [name for name in (*self.publish, *self.remove) if name not in managed]
        staging = out / self.staging
        if not _STAGING_NAME.fullmatch(self.staging) or staging.is_symlink():
            foreign.insert(0, self.staging)
        if foreign:
            raise JournalError(
                f"{out / JOURNAL_NAME} names {', '.join(repr(name) for name in foreign)}, which "
                f"{'is' if len(foreign) == 1 else 'are'} not a file of an export or its staging folder in {out} "
                f"(an export writes only {', '.join(managed) or 'no files'} and {STAGING_PREFIX}<pid>); nothing was "
                f"changed: delete {out / JOURNAL_NAME} and export again")


def _apply(out: Path, journal: PublishJournal, managed: Collection[str]) -> None:
    """Carry out a committed journal (idempotent: safe to repeat after a kill)."""
    journal.check(out, managed)
    staging = out / journal.staging
    for name in journal.publish:
        source = staging / name
        if source.exists():
            fault_point(f"export.publish.{name}")
            os.replace(source, out / name)
    for name in journal.remove:
        fault_point(f"export.remove.{name}")
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            (out / name).unlink()
    shutil.rmtree(staging, ignore_errors=True)
    fault_point("export.before_journal_removed")
    (out / JOURNAL_NAME).unlink(missing_ok=True)


def _staging_pid(path: Path) -> int | None:
    suffix = path.name[len(STAGING_PREFIX):]
    return int(suffix) if suffix.isdigit() else None


def recover(out: str | os.PathLike[str], managed: Collection[str]) -> list[str]:
    """Finish or clean up what a killed export left in ``out``; return what was done, in words.

    A journal is completed (the killed export had been verified and committed); staging folders
    and temporaries of processes that no longer run are removed. ``managed`` are the names of the
    files an export writes: a journal that names anything else is refused.

    Raises:
        ExportError: another export process is writing into ``out`` right now.
        JournalError: the journal is damaged or names other files (the message says how to clean up by hand).
    """
    out = Path(out)
    done: list[str] = []
    journal_path = out / JOURNAL_NAME
    if journal_path.is_file():
        journal = PublishJournal.load(journal_path)
        _apply(out, journal, managed)
        done.append(f"completed the publication of an interrupted export in {out} ({', '.join(journal.publish)})")
    for staging in sorted(out.glob(f"{STAGING_PREFIX}*")):
        pid = _staging_pid(staging)
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            raise ExportError(f"another export (process {pid}) is writing into {out}; wait for it to finish or "
                              f"choose another --out (if no export is running, delete {staging})")
        if staging.is_symlink():  # remove the link, never what it points to
            staging.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
        done.append(f"removed {staging.name}, left by an export that was killed before it published anything")
    for name in managed:
        for removed in remove_stale_temporaries(out / name):
            done.append(f"removed {removed.name}, a temporary file left by a killed process")
    return done


class ExportTransaction:
    """A staging folder in ``out`` whose files are published together by :meth:`commit`.

    Use as a context manager: leaving the block without a commit (an exception, Ctrl-C,
    SIGTERM) removes the staging folder and leaves ``out`` as it was.
    """

    def __init__(self, out: str | os.PathLike[str], managed: Iterable[str]) -> None:
        self.out = Path(out)
        self.managed = tuple(managed)
        self.recovered = tuple(recover(self.out, self.managed))
        self.staging = self.out / f"{STAGING_PREFIX}{os.getpid()}"
        self.committed = False

    def __enter__(self) -> ExportTransaction:
        self.staging.mkdir()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.committed:
            shutil.rmtree(self.staging, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where the file ``name`` is written before publication."""
        return self.staging / name

    def final(self, name: str) -> Path:
        """Where the file ``name`` is published."""
        return self.out / name

    def commit(self) -> None:
        """Publish every staged file and remove the managed files the export did not produce.

        Raises:
            ExportError: a final name is taken by a directory (nothing is published then).
        """
        staged = sorted(p.name for p in self.staging.iterdir() if p.is_file() and not p.name.startswith("."))
        unknown = [name for name in staged if name not in self.managed]
        if unknown:  # the journal's reader would refuse them: a bug of the export, caught before the commit point
            raise ExportError(f"the export staged {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
                              "not among the files an export publishes; nothing was published")
        blocked = [name for name in staged if (self.out / name).is_dir()]
        if blocked:
            raise ExportError(f"{', '.join(str(self.out / n) for n in blocked)} is a directory where the export "
                              "writes a file; remove it or choose another --out (nothing was published)")
        fault_point("export.before_commit")
        journal = PublishJournal(self.staging.name, tuple(staged),
                                 tuple(name for name in self.managed if name not in staged))
        journal.save(self.out / JOURNAL_NAME)
        self.committed = True
        fault_point("export.committed")
        _apply(self.out, journal, self.managed)
