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
record types existed still load. Field types are checked on load by pydantic (the well-kept
library for typed validation of plain dataclasses: nested records, tuples, optionals and
literals with messages that name the bad field), so a record in memory always has the types
its class declares.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fornet.atomic import write_text_atomic
from fornet.errors import RecordError

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

    @classmethod
    def format_tag(cls) -> str:
        """The ``format`` value written into the file: ``"<id>/<version>"``."""
        return f"{cls.FORMAT}/{cls.VERSION}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content, ``format`` first."""
        body = _adapter(type(self)).dump_python(self, mode="json")
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
    def from_dict(cls: type[R], data: Any, source: str = "record") -> R:
        """Validate parsed JSON (``source`` names it in errors)."""
        if not isinstance(data, dict):
            raise cls.ERROR(f"{source} is not a {cls.DESCRIPTION} (not a JSON object); {cls.FIX}")
        fmt = data.get("format")
        identity, _, version = str(fmt).rpartition("/")
        if identity != cls.FORMAT or not version.isdigit():
            raise cls.ERROR(f"{source} is not a {cls.DESCRIPTION} ({cls.format_tag()}; it says format {fmt!r}); "
                            f"{cls.FIX}")
        if int(version) > cls.VERSION:
            raise cls.ERROR(f"{source} is a {cls.DESCRIPTION} of version {version}, newer than this fornet-deploy "
                            f"reads (version {cls.VERSION}); upgrade fornet-deploy or {cls.FIX}")
        body = {key: value for key, value in data.items() if key != "format"}
        import pydantic

        try:
            return _adapter(cls).validate_python(body)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<record>'}: {err['msg']}"
                                 for err in exc.errors()[:5])
            raise cls.ERROR(f"{source} is a damaged {cls.DESCRIPTION} ({problems}); {cls.FIX}") from exc

    @classmethod
    def load(cls: type[R], path: str | os.PathLike[str]) -> R:
        """Read and validate the record at ``path``.

        Raises:
            RecordError: the file is missing, unreadable, not JSON, another format, a newer
                version, or has a missing or mistyped field; the message names the file and the fix.
        """
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise cls.ERROR(f"{source} not found; {cls.FIX}") from exc
        except IsADirectoryError as exc:
            raise cls.ERROR(f"{source} is a directory, not a {cls.DESCRIPTION}; {cls.FIX}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise cls.ERROR(f"cannot read {source} ({exc}); {cls.FIX}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise cls.ERROR(f"{source} is not valid JSON (truncated or corrupt: {exc}); {cls.FIX}") from exc
        return cls.from_dict(data, str(source))


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
