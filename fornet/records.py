"""One contract for every file fornet-deploy writes and reads back.

A record is a frozen dataclass that subclasses :class:`Record` and names its format::

    @dataclass(frozen=True)
    class EngineMetadata(Record):
        FORMAT: ClassVar[str] = "fornet-deploy/engine-sidecar"
        VERSION: ClassVar[int] = 1
        DESCRIPTION: ClassVar[str] = "fornet-deploy engine sidecar"
        FIX: ClassVar[str] = "rebuild the engine with fornet build"
        ERROR: ClassVar[type[RecordError]] = EngineMetadataError
        precision: str
        ...

    meta.save(path)                  # atomic JSON: {"format": "fornet-deploy/engine-sidecar/1", ...fields}
    EngineMetadata.load(path)        # the one reader: refuses missing, corrupt, foreign and newer files

The JSON keeps the historical ``"format": "<id>/<version>"`` field, so files written before the
record types existed still load. Every field is typed down to its leaves (nested dataclasses,
tuples, optionals, literals, mappings of typed values; never ``Any`` or a bare ``dict``), and the
types are checked strictly on load by pydantic (the well-kept library for typed validation of plain
dataclasses, with messages that name the bad field): ``"3"`` is not an int, ``1`` is not a bool.
A loaded record therefore always has the types its class declares, and a record whose values do
not match its declared types is not written.

A record whose layout changes bumps ``VERSION`` and overrides :meth:`Record.upgrade` to read the
previous layout (the base refuses older versions with ``FIX``); files written before a record
carried a ``format`` tag are read as ``UNTAGGED_VERSION`` when the class sets it.

JSON-lines files (one record per line, each line tagged) use :class:`LineRecord`: ``to_line()``
to write, ``read_lines(path)`` to read back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fornet.atomic import write_text_atomic
from fornet.errors import FornetError, RecordError
from fornet.readable import unreadable_message

R = TypeVar("R", bound="Record")


@dataclasses.dataclass(frozen=True)
class Record:
    """Base of every record; subclasses are frozen dataclasses that set the three class constants."""

    #: Format id, e.g. ``"fornet-deploy/onnx-sidecar"``.
    FORMAT: ClassVar[str] = ""
    #: Version of the layout; a reader refuses files with a newer one.
    VERSION: ClassVar[int] = 1
    #: What the file is, in words ("fornet-deploy ONNX sidecar").
    DESCRIPTION: ClassVar[str] = "fornet-deploy record"
    #: How a user gets a good file (ends every error message).
    FIX: ClassVar[str] = "re-create it with the fornet command that wrote it"
    #: The exception raised for this record's files (a :class:`RecordError` subclass).
    ERROR: ClassVar[type[RecordError]] = RecordError
    #: Optional sections left out of the file (rather than written as ``null``) when they are None.
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()
    #: The version of files written before this record carried a ``format`` tag (None: such files are refused).
    UNTAGGED_VERSION: ClassVar[int | None] = None

    @classmethod
    def format_tag(cls) -> str:
        """The ``format`` value written into the file: ``"<id>/<version>"``."""
        return f"{cls.FORMAT}/{cls.VERSION}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content, ``format`` first.

        Raises:
            pydantic_core.PydanticSerializationError: a value does not have its field's declared type
                (a bug of the writer: such a record would not load back).
        """
        body = _adapter(type(self)).dump_python(self, mode="json", warnings="error")
        for name in self.OMIT_WHEN_NONE:
            if body[name] is None:
                del body[name]
        return {"format": self.format_tag(), **body}

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the record to ``path`` atomically (temporary file + rename); return the path."""
        write_text_atomic(path, self.to_json())
        return Path(path)

    @classmethod
    def upgrade(cls, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """The fields of a file of an older ``version`` in the current layout; None: not readable.

        The base reads no older version (the file is then refused with :attr:`FIX`). A record
        whose layout changed overrides this for the previous versions it still reads.
        """
        return None

    @classmethod
    def from_dict(cls: type[R], data: Any, source: str = "record") -> R:
        """Validate parsed JSON (``source`` names it in errors)."""
        if not isinstance(data, dict):
            raise cls.ERROR(f"{source} is not a {cls.DESCRIPTION} (not a JSON object); {cls.FIX}")
        body = {key: value for key, value in data.items() if key != "format"}
        version = cls._version_of(data.get("format"), "format" in data, source)
        if version < cls.VERSION:
            upgraded = cls.upgrade(version, body)
            if upgraded is None:
                raise cls.ERROR(f"{source} is a {cls.DESCRIPTION} of version {version}, older than this "
                                f"fornet-deploy reads (version {cls.VERSION}); {cls.FIX}")
            body = upgraded
        return cls._validate(body, source)

    @classmethod
    def _version_of(cls, fmt: Any, tagged: bool, source: str) -> int:
        """The layout version a file's ``format`` value names (refusing foreign and newer files)."""
        if not tagged and cls.UNTAGGED_VERSION is not None:
            return cls.UNTAGGED_VERSION
        identity, _, version = str(fmt).rpartition("/")
        if identity != cls.FORMAT or not version.isdigit():
            raise cls.ERROR(f"{source} is not a {cls.DESCRIPTION} ({cls.format_tag()}; it says format {fmt!r}); "
                            f"{cls.FIX}")
        if int(version) > cls.VERSION:
            raise cls.ERROR(f"{source} is a {cls.DESCRIPTION} of version {version}, newer than this fornet-deploy "
                            f"reads (version {cls.VERSION}); upgrade fornet-deploy or {cls.FIX}")
        return int(version)

    @classmethod
    def _validate(cls: type[R], body: dict[str, Any], source: str) -> R:
        """The record of ``body``, every field checked strictly against its declared type."""
        import pydantic

        try:
            return _adapter(cls).validate_json(json.dumps(body), strict=True)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<record>'}: {err['msg']}"
                                 for err in exc.errors()[:5])
            raise cls.ERROR(f"{source} is a damaged {cls.DESCRIPTION} ({problems}); {cls.FIX}") from exc
        except FornetError as exc:  # a nested dataclass refused its values in __post_init__
            raise cls.ERROR(f"{source} is a damaged {cls.DESCRIPTION} ({exc}); {cls.FIX}") from exc

    @classmethod
    def load(cls: type[R], path: str | os.PathLike[str]) -> R:
        """Read and validate the record at ``path``.

        Raises:
            RecordError: the file is missing, unreadable, not JSON, another format, a newer or
                unreadably old version, or has a missing or mistyped field; the message names
                the file and the fix.
        """
        source = Path(path)
        text = cls._read_text(source)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise cls.ERROR(f"{source} is not valid JSON (truncated or corrupt: {exc}); {cls.FIX}") from exc
        return cls.from_dict(data, str(source))

    @classmethod
    def _read_text(cls, source: Path) -> str:
        """The file's text, or this record's error naming the file and the fix."""
        try:
            return source.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise cls.ERROR(f"{source} not found; {cls.FIX}") from exc
        except IsADirectoryError as exc:
            raise cls.ERROR(f"{source} is a directory, not a {cls.DESCRIPTION}; {cls.FIX}") from exc
        except PermissionError as exc:
            raise cls.ERROR(unreadable_message(source, cls.DESCRIPTION)) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise cls.ERROR(f"cannot read {source} ({exc}); {cls.FIX}") from exc


@dataclasses.dataclass(frozen=True)
class LineRecord(Record):
    """A record stored one per line of a JSON-lines file, each line a tagged JSON object.

    A writer appends :meth:`to_line`; :meth:`read_lines` reads the file back. Appending is not
    atomic: a last line without its newline is a write a crash cut short and is left out.
    """

    def to_line(self) -> str:
        """One line of the file (newline included)."""
        return json.dumps(self.to_dict()) + "\n"

    @classmethod
    def read_lines(cls: type[R], path: str | os.PathLike[str]) -> list[R]:
        """Every record of ``path`` in file order (blank lines skipped).

        Raises:
            RecordError: the file is missing or unreadable, or a line is not JSON, another format,
                newer, or mistyped; the message names the file, the line and the fix.
        """
        source = Path(path)
        lines = cls._read_text(source).split("\n")[:-1]  # the part after the last newline is empty or a torn write
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{source} line {number}"
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise cls.ERROR(f"{where} is not valid JSON ({exc}); {cls.FIX}") from exc
            records.append(cls.from_dict(data, where))
        return records


@dataclasses.dataclass(frozen=True)
class FileDigest:
    """A file recorded by name (relative to the record) and sha256."""

    file: str
    sha256: str


_ADAPTERS: dict[type, Any] = {}


def _adapter(cls: type) -> Any:
    """pydantic's validator/serialiser for a record class (built once per class)."""
    if cls not in _ADAPTERS:
        import pydantic

        _ADAPTERS[cls] = pydantic.TypeAdapter(cls)
    return _ADAPTERS[cls]
