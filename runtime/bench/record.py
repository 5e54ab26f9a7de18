"""``report.json`` / ``fornet-bench --json``: the benchmark record, typed and versioned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fornet.records import Record


@dataclass(frozen=True)
class BenchReport(Record):
    """What was measured, how and where (each section as :mod:`fornet.runtime.bench.runner` fills it)."""

    FORMAT: ClassVar[str] = "fornet-deploy/bench"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy benchmark report"
    FIX: ClassVar[str] = "run fornet-bench again with --json or --report"
    #: Sections that were not measured are left out.
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("speed", "accuracy")

    fornet_version: str
    command: str
    engine: dict[str, Any]
    reference: dict[str, Any] | None
    environment: dict[str, Any]
    trtexec: str | None
    speed: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None
