"""``report.json`` / ``fornet-bench --json``: the benchmark record, typed to the leaves and versioned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fornet.calibration.metrics import ParitySummary, ScoreSummary
from fornet.records import Record
from fornet.runtime.bench.environment import Environment
from fornet.runtime.bench.timing import LatencySummary, TimingRecord


@dataclass(frozen=True)
class EngineUnderTest:
    """The model file benchmarked, its backend and I/O contract, and how it ran."""

    path: str
    backend: str
    #: :meth:`fornet.runtime.model_io.ModelIO.describe`.
    model: str
    input_size: tuple[int, int]
    batch: int | None
    precision: str | None
    variant: str | None
    gpu_prepost: bool
    cuda_graph: bool


@dataclass(frozen=True)
class ReferenceModel:
    """The PyTorch checkpoint timed and scored beside the engine."""

    checkpoint: str
    backend: str


@dataclass(frozen=True)
class ScopeRecord:
    """One speed scope: each candidate's latencies (None: not measurable), notes, and the reference/engine ratio."""

    title: str
    results: dict[str, LatencySummary | None]
    notes: tuple[str, ...]
    #: Median latency of the reference over the engine's (only with a reference measured in this scope).
    speedup: float | None = None
    #: Median latency of the engine over each ``--compare`` backend's (above 1: that backend is faster).
    speedup_over_engine: dict[str, float] | None = None


@dataclass(frozen=True)
class StageSummary:
    """Median ms per end-to-end call of pre-processing, inference and post-processing, and pre + post's share."""

    pre_ms: float
    infer_ms: float
    post_ms: float
    prepost_share: float


@dataclass(frozen=True)
class SpeedRecord:
    """The speed measurements (see :mod:`fornet.runtime.bench.runner`)."""

    frame_size: tuple[int, int]
    batch: int
    input_size: tuple[int, int]
    settings: TimingRecord
    timer: str
    engine: str
    reference: str | None
    scopes: dict[str, ScopeRecord]
    stages: dict[str, StageSummary]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class AccuracyRecord:
    """The scores of each backend on a Cityscapes split and, with a reference, their parity."""

    data: str
    split: str
    images: int
    frames: str
    #: Folder of the engine's labelId PNGs (``--save-predictions``).
    predictions: str | None
    scores: dict[str, ScoreSummary]
    miou: dict[str, float | None]
    parity: ParitySummary | None
    #: Each ``--compare`` backend against the reference (PyTorch), else against the engine, by label.
    compared_parity: dict[str, ParitySummary] | None = None


@dataclass(frozen=True)
class Bf16GateRecord:
    """A model run in BF16 scored against the same model in FP32 (``fp32``, its label) on the accuracy data.

    mIoU in percent, the drop in points (positive: BF16 is worse); ``parity`` is FP32 (``a``) vs BF16 (``b``).
    """

    fp32: str
    split: str
    images: int
    max_miou_drop_points: float
    fp32_miou: float | None
    bf16_miou: float | None
    miou_drop_points: float | None
    passed: bool
    parity: ParitySummary


@dataclass(frozen=True)
class BenchReport(Record):
    """What was measured, how and where (each section as :mod:`fornet.runtime.bench.runner` fills it)."""

    FORMAT: ClassVar[str] = "fornet-deploy/bench"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy benchmark report"
    FIX: ClassVar[str] = "run fornet-bench again with --json or --report"
    #: Sections that were not measured are left out.
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("speed", "accuracy", "bf16_gate")

    fornet_version: str
    command: str
    engine: EngineUnderTest
    reference: ReferenceModel | None
    environment: Environment
    trtexec: str | None
    speed: SpeedRecord | None = None
    accuracy: AccuracyRecord | None = None
    #: The BF16 gate of each model under test run in BF16 (only with --data), by label.
    bf16_gate: dict[str, Bf16GateRecord] | None = None
