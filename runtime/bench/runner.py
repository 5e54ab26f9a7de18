"""What ``fornet-bench`` measures: speed in three labelled scopes, accuracy and parity (a library).

Speed scopes, each timed with :func:`fornet.runtime.bench.timing.measure` (the engine, the same file
opened by each ``--compare`` backend and PyTorch, interleaved in one run):

* ``compute``: the model alone, inputs already where it reads them (device memory on a GPU).
* ``copies``: the model with its host/device copies: a preprocessed host batch in, the raw output
  (scores or labels at the network size) back on the host, i.e. ``Backend.infer``.
* ``end_to_end``: uint8 BGR frames of the stated size in, uint8 labels at the frame size out
  (pre + infer + post), i.e. ``Segmenter.segment_batch``; the per-stage split is reported too.

On the CPU there are no host/device copies: ``copies`` is then the ``compute`` measurement
itself, said so in the record. ONNX Runtime's CUDA provider copies inside ``run()``, so its
``compute`` scope is not measured.

Accuracy (``data``): mIoU of the engine (and each ``--compare`` backend) on a Cityscapes split and,
with a checkpoint, of PyTorch on the same frames, with :class:`~fornet.calibration.metrics.ParityReport`
(pixel agreement overall and on the boundary band, per-class IoU and mIoU deltas, engine minus
PyTorch). A model run in BF16 first passes the BF16 gate (:mod:`fornet.runtime.bench.bf16_gate`).
"""

from __future__ import annotations

import math
import operator
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fornet import __version__
from fornet.atomic import ensure_writable_dir
from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from fornet.calibration.metrics import ConfusionMatrix, ParityReport, save_label_id_png
from fornet.options import OptionGroup, hw_arg, option, percentage, positive_int_arg
from fornet.progress import StatusLine
from fornet.runtime.bench.bf16_gate import BF16_GATE_MODES, DEFAULT_MAX_BF16_DROP, bf16_gate, enforce
from fornet.runtime.bench.environment import ThreadSettings, collect_environment, load_average
from fornet.runtime.bench.legend import with_legend
from fornet.runtime.bench.record import (
    AccuracyRecord,
    BenchReport,
    EngineUnderTest,
    ReferenceModel,
    ScopeRecord,
    SpeedRecord,
    StageSummary,
)
from fornet.runtime.bench.timing import (
    DEFAULT_CV_WARNING,
    TIMING,
    LatencyStats,
    TimingRecord,
    TimingSettings,
    measure,
    spread_warning,
)
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.model_io import ModelIO
from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.tensorrt.plan_metadata import EngineMetadata
from fornet.runtime.tensorrt.plugins import PLUGIN_LIBRARY_NAME, PluginLibraryError, find_plugin_library

SCOPES = ("compute", "copies", "end_to_end")
SCOPE_TITLES = {
    "compute": "engine compute",
    "copies": "engine + host/device copies",
    "end_to_end": "end to end (pre + infer + post)",
}
#: Colour (BGR) of the pixels where two predictions disagree, in the report's overlays.
DISAGREEMENT_BGR = (255, 0, 255)


class BenchError(FornetRuntimeError):
    """Benchmark options that cannot work together."""


REFERENCE = OptionGroup("PyTorch reference and other backends")
ACCURACY = OptionGroup("accuracy")
OUTPUT = OptionGroup("output")


@dataclass(frozen=True)
class BenchOptions:
    """What to benchmark (the CLI flags, as a value).

    Attributes:
        model: the model under test (:class:`ModelSpec`: file, backend, device, batch, threads, ...).
        timing: warm-up, minimum iterations and duration per scope.
        frame_size: ``(H, W)`` of the generated end-to-end frames.
        ckpt: the PyTorch reference, timed and scored on the same frames (``model.variant`` names
            its architecture when the model under test is not a checkpoint itself).
        data, split, limit: Cityscapes-layout data for mIoU and parity.
        save_predictions: folder for labelId PNGs of the engine's predictions.
        boundary_width: width of the boundary band of the parity report.
        overlays: number of images drawn with the disagreement pixels highlighted.
        cv_warning: coefficient of variation above which a measurement is flagged.
        speed: run the speed scopes (False: accuracy only).
        progress: progress bars.
    """

    model: ModelSpec
    timing: TimingSettings = field(default_factory=TimingSettings)
    frame_size: tuple[int, int] = option((1024, 2048), flag="--frame-size", parse=hw_arg, metavar="HxW",
                                         default_text="1024x2048, a Cityscapes camera frame", group=TIMING,
                                         help="size of the end-to-end frames")
    ckpt: Path | None = option(None, flag="--ckpt", parse=Path, metavar="PATH", group=REFERENCE,
                               help="checkpoint timed in the same scopes on the same frames (interleaved) and "
                                    "scored")
    data: Path | None = option(None, flag="--data", parse=Path, metavar="DIR", group=ACCURACY,
                               help="Cityscapes-layout folder (leftImg8bit/, gtFine/)")
    split: str = option("val", flag="--split", group=ACCURACY, help="split of --data")
    limit: int | None = option(None, flag="--limit", parse=positive_int_arg, metavar="N", group=ACCURACY,
                               help="only the first N images")
    save_predictions: Path | None = option(None, flag="--save-predictions", parse=Path, metavar="DIR",
                                           group=ACCURACY,
                                           help="write the engine's <stem>_pred_labelIds.png (for "
                                                "cityscapesscripts) into DIR")
    boundary_width: int = option(3, flag="--boundary-width", parse=int, metavar="PX", group=ACCURACY,
                                 help="width of the boundary band of the parity report")
    overlays: int = option(3, flag="--overlays", parse=int, metavar="N", group=OUTPUT,
                           help="overlays with disagreement pixels in the report")
    cv_warning: float = option(DEFAULT_CV_WARNING, flag="--cv-warn", parse=percentage(None), metavar="PCT",
                               default_text=f"{100 * DEFAULT_CV_WARNING:g}", group=TIMING,
                               help="warn above this coefficient of variation")
    compare: tuple[str, ...] = option(flag="--compare", action="append", default_factory=list, convert=tuple,
                                      metavar="BACKEND[:PRECISION]", group=REFERENCE, default_text="",
                                      help="also open the model file with BACKEND (at PRECISION) and time and score it "
                                           "in the same interleaved run, e.g. --compare openvino:bf16 (repeatable)")
    max_miou_drop: float = option(DEFAULT_MAX_BF16_DROP, flag="--max-miou-drop", parse=float, metavar="POINTS",
                                  group=ACCURACY,
                                  help="BF16 gate: largest accepted mIoU drop of a model run in BF16 against the same "
                                       "model in FP32 on --data, checked before timing")
    bf16_gate: str = option("refuse", flag="--bf16-gate", choices=BF16_GATE_MODES, group=ACCURACY,
                            help="when a BF16 run loses more than --max-miou-drop: refuse (nothing is timed), or "
                                 "warn and go on")
    speed: bool = option(True, flag="--skip-speed", convert=operator.not_, group=TIMING,
                         help="accuracy only (needs --data)")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, group=OUTPUT, help="no progress bars")

    @property
    def batch(self) -> int:
        """Images per timed call (``--batch``, default 1)."""
        return self.model.batch or 1

    def validate(self) -> None:
        """Raise :class:`BenchError` for values that cannot work."""
        if self.save_predictions is not None and self.data is None:
            raise BenchError("--save-predictions writes the predictions on --data: add --data DIR")
        if not self.speed and self.data is None:
            raise BenchError("nothing to do: --skip-speed needs --data for the accuracy run")
        if not self.max_miou_drop >= 0.0:
            raise BenchError(f"--max-miou-drop must be >= 0 points, got {self.max_miou_drop}; e.g. 0.5")
        if self.bf16_gate not in BF16_GATE_MODES:
            raise BenchError(f"--bf16-gate must be one of {', '.join(BF16_GATE_MODES)}, got {self.bf16_gate!r}")

    def engine_spec(self) -> ModelSpec:
        """The model under test; ``--variant`` goes to the reference when the model is not a checkpoint."""
        if self.model.variant is not None and "variant" not in self.model.backend_class().OPTIONS \
                and self.ckpt is not None:
            return replace(self.model, variant=None)
        return self.model

    def compared_specs(self) -> list[ModelSpec]:
        """The model file opened by each ``--compare BACKEND[:PRECISION]`` (the other model flags kept), checked."""
        specs = []
        for entry in self.compare:
            backend, _, precision = entry.partition(":")
            try:
                spec = replace(self.engine_spec(), backend=backend, precision=precision or "auto")
                spec.backend_class()
            except FornetRuntimeError as exc:
                raise BenchError(f"--compare {entry}: {exc}") from None
            specs.append(spec)
        return specs

    def reference_spec(self, input_size: tuple[int, int]) -> ModelSpec | None:
        """The PyTorch reference at the engine's input size (None without ``--ckpt``)."""
        if self.ckpt is None:
            return None
        return ModelSpec(self.ckpt, backend="torch", device=self.model.device, input_size=input_size,
                         variant=self.model.variant, threads=self.model.threads)


@dataclass
class BenchResult:
    """The record plus what only the report draws (overlay images, BGR)."""

    record: BenchReport
    overlays: list[tuple[str, np.ndarray]] = field(default_factory=list)


# ------------------------------------------------------------------------------- set-up

def make_frames(size: tuple[int, int], count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` deterministic uint8 BGR frames of ``size`` (content does not change the work)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


# -------------------------------------------------------------------------------- speed

@dataclass
class ScopeCandidate:
    """One segmenter's callable per scope (``None``: not measurable; ``"compute"``: the compute measurement).

    ``stages`` collects the :class:`~fornet.runtime.pipelines.StageTimes` of each end-to-end call.
    """

    label: str
    scopes: dict[str, Callable[[], object] | str | None]
    notes: dict[str, str]
    stages: list[Any] = field(default_factory=list)


def scope_candidate(seg: Segmenter, frames: list[np.ndarray]) -> ScopeCandidate:
    """The callables timing ``seg`` on ``frames`` in each of :data:`SCOPES`."""
    feed = seg.preprocess(frames)
    backend = seg.backend
    label = backend.label

    def copies() -> object:
        return backend.infer(feed)

    candidate = ScopeCandidate(label, {"copies": copies}, {})
    compute = backend.staged_compute(feed)
    if backend.runs_on_cpu:
        candidate.scopes.update(compute=compute, copies="compute")
        candidate.notes["copies"] = f"{label}: on the CPU there are no host/device copies; same measurement as compute"
    else:
        candidate.scopes["compute"] = compute
        if compute is None:
            candidate.notes["compute"] = f"{label}: not separable: the backend copies inputs and outputs in its run"

    def end_to_end() -> None:
        seg.segment_batch(frames)
        candidate.stages.append(seg.last_times)

    candidate.scopes["end_to_end"] = end_to_end
    return candidate


def stage_summary(candidate: ScopeCandidate, stats: LatencyStats) -> StageSummary:
    """Median ms of pre, infer and post over the end-to-end calls, and pre + post as a share of ``stats``."""
    pre = float(np.median([t.pre for t in candidate.stages])) * 1000
    infer = float(np.median([t.infer for t in candidate.stages])) * 1000
    post = float(np.median([t.post for t in candidate.stages])) * 1000
    return StageSummary(pre_ms=pre, infer_ms=infer, post_ms=post, prepost_share=(pre + post) / stats.median)


def _scope_record(scope: str, candidates: list[ScopeCandidate], stats: dict[str, LatencyStats],
                  reference: str | None) -> ScopeRecord:
    engine = candidates[0].label
    speedup = None
    if reference is not None and engine in stats and reference in stats:
        speedup = stats[reference].median / stats[engine].median
    over_engine = {c.label: stats[engine].median / stats[c.label].median for c in candidates[1:]
                   if engine in stats and c.label in stats and c.label != reference}
    return ScopeRecord(
        title=SCOPE_TITLES[scope],
        results={c.label: stats[c.label].to_record() if c.label in stats else None for c in candidates},
        notes=tuple(c.notes[scope] for c in candidates if scope in c.notes),
        speedup=speedup,
        speedup_over_engine=over_engine or None,
    )


def speed_benchmark(engine: Segmenter, reference: Segmenter | None, options: BenchOptions,
                    compared: Sequence[Segmenter] = ()) -> SpeedRecord:
    """Time every scope for the engine (the compared backends and the reference, interleaved); the ``speed`` record."""
    if engine.io.batch is not None and engine.io.batch != options.batch:
        raise BenchError(f"the engine has a static batch of {engine.io.batch}; pass --batch {engine.io.batch} "
                         "(or re-export with `fornet export --dynamic-batch`)")
    frames = make_frames(options.frame_size, options.batch)
    candidates = [scope_candidate(seg, frames) for seg in (engine, *compared, reference) if seg is not None]
    stats: dict[str, dict[str, LatencyStats]] = {}
    scopes: dict[str, ScopeRecord] = {}
    warnings: list[str] = []
    for scope in SCOPES:
        runnable = {c.label: step for c in candidates if callable(step := c.scopes[scope])}
        stats[scope] = measure(runnable, options.timing, options.batch, options.progress,
                               desc=SCOPE_TITLES[scope]) if runnable else {}
        warnings += [w for label, s in stats[scope].items()
                     if (w := spread_warning(f"{SCOPE_TITLES[scope]} / {label}", s, options.cv_warning))]
        for c in candidates:
            alias = c.scopes[scope]
            if isinstance(alias, str):
                stats[scope][c.label] = stats[alias][c.label]
        scopes[scope] = _scope_record(scope, candidates, stats[scope],
                                      reference.backend.label if reference is not None else None)
    timing = options.timing
    return SpeedRecord(
        frame_size=options.frame_size, batch=options.batch, input_size=engine.input_size,
        settings=TimingRecord(warmup_s=timing.warmup_s, min_iters=timing.min_iters, duration_s=timing.duration_s,
                              description=timing.describe()),
        timer="host perf_counter around each synchronous call; candidates interleaved (A B, B A, ...)",
        engine=candidates[0].label, reference=reference.backend.label if reference is not None else None,
        scopes=scopes,
        stages={c.label: stage_summary(c, stats["end_to_end"][c.label]) for c in candidates},
        warnings=tuple(warnings),
    )


# ----------------------------------------------------------------------------- accuracy

def disagreement_overlay(seg: Segmenter, frame: np.ndarray, pred: np.ndarray, other: np.ndarray | None,
                         target: np.ndarray) -> np.ndarray:
    """``pred`` drawn on ``frame``, pixels where it differs from ``other`` (else: wrong vs ``target``) marked, above
    a legend of the classes present and the mark."""
    image = seg.overlay(frame, pred, 0.5)
    marked = pred != other if other is not None else (pred != target) & (target != IGNORE_INDEX)
    image[marked] = DISAGREEMENT_BGR
    mark = "differs from PyTorch" if other is not None else "differs from the ground truth"
    return with_legend(image, pred, seg.io.classes, seg.io.palette_bgr, (mark, DISAGREEMENT_BGR))


def accuracy_benchmark(engine: Segmenter, reference: Segmenter | None, options: BenchOptions,
                       compared: Sequence[Segmenter] = ()) -> tuple[AccuracyRecord, list[tuple[str, np.ndarray]]]:
    """mIoU of the engine (the compared backends and PyTorch) on ``options.data`` and their parity with PyTorch
    (else with the engine); the record and overlays."""
    assert options.data is not None
    if engine.io.num_classes != NUM_CLASSES:
        raise BenchError(f"the engine predicts {engine.io.num_classes} classes but Cityscapes scoring needs "
                         f"{NUM_CLASSES}; benchmark a model trained on the 19 trainIds, or drop --data")
    dataset = CityscapesDataset(options.data, options.split, require_labels=True)
    count = len(dataset) if options.limit is None else min(options.limit, len(dataset))
    out_dir = ensure_writable_dir(options.save_predictions) if options.save_predictions is not None else None
    label = engine.backend.label
    other_label = reference.backend.label if reference is not None else "reference"
    parity = ParityReport(NUM_CLASSES, IGNORE_INDEX, options.boundary_width) if reference is not None else None
    scores = parity.b if parity is not None else ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
    compared_parity = {seg.backend.label: ParityReport(NUM_CLASSES, IGNORE_INDEX, options.boundary_width)
                       for seg in compared}
    overlays = []
    for index in tqdm(range(count), desc="accuracy", unit="img", disable=not options.progress):
        sample = dataset[index]
        assert sample.label is not None
        frame = np.ascontiguousarray(sample.image[:, :, ::-1])
        pred = engine(frame)
        other = None
        if reference is not None and parity is not None:
            other = reference(frame)
            parity.update(other, pred, sample.label)
        else:
            scores.update(pred, sample.label)
        for seg in compared:
            compared_parity[seg.backend.label].update(pred if other is None else other, seg(frame), sample.label)
        if out_dir is not None:
            save_label_id_png(out_dir / f"{sample.name}_pred_labelIds.png", pred)
        if index < options.overlays:
            overlays.append((sample.name, disagreement_overlay(engine, frame, pred, other, sample.label)))
    scores_by_backend = {label: scores.to_record(CLASS_NAMES)}
    if parity is not None:
        scores_by_backend[other_label] = parity.a.to_record(CLASS_NAMES)
    baseline = other_label if reference is not None else label
    for name, report in compared_parity.items():
        scores_by_backend[name] = report.b.to_record(CLASS_NAMES)
    record = AccuracyRecord(
        data=str(options.data), split=options.split, images=count,
        frames="the data set's images at their own size (BGR), labels at that size",
        predictions=str(out_dir) if out_dir is not None else None,
        scores=scores_by_backend,
        miou={name: entry.miou for name, entry in scores_by_backend.items()},
        parity=None if parity is None else parity.to_record(CLASS_NAMES, (other_label, label)),
        compared_parity={name: report.to_record(CLASS_NAMES, (baseline, name))
                         for name, report in compared_parity.items()} or None,
    )
    return record, overlays


# ------------------------------------------------------------------------------ the run

def trtexec_command(plan: Path, io: ModelIO, timing: TimingSettings, batch: int = 1, cuda_graph: bool = False,
                    plugin: Path | None = None) -> str:
    """The trtexec command that times ``plan`` like the ``compute`` scope (same warm-up, iterations, batch)."""
    metadata = EngineMetadata.load_if_present(plan)
    argv = ["trtexec", f"--loadEngine={plan}"]
    if metadata is None or metadata.plugin is not None:
        try:
            library = find_plugin_library(plugin)
        except PluginLibraryError:
            library = Path(PLUGIN_LIBRARY_NAME)
        argv.append(f"--staticPlugins={library}")
    if io.batch is None:
        argv.append(f"--shapes={io.input_name}:{'x'.join(str(d) for d in io.input_shape(batch))}")
    argv += [f"--warmUp={round(timing.warmup_s * 1000)}", f"--iterations={timing.min_iters}",
             f"--duration={math.ceil(timing.duration_s)}", "--noDataTransfers", "--useSpinWait"]
    if cuda_graph:
        argv.append("--useCudaGraph")
    return shlex.join(argv)


def _threads(options: BenchOptions) -> ThreadSettings:
    torch = sys.modules.get("torch")
    return ThreadSettings(requested=options.model.threads,
                          onnxruntime_intra_op=options.model.threads or "default (one per physical core)",
                          torch=torch.get_num_threads() if torch is not None else None)


def _check_distinct_labels(models: list[Segmenter]) -> None:
    """Refuse two models under test that reports would name alike (the same backend twice)."""
    labels = [seg.backend.label for seg in models]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise BenchError(f"--compare: {', '.join(twice)} would be timed twice (the engine is {labels[0]}); compare "
                         "other backends or precisions, e.g. --compare openvino:bf16")


def run_benchmark(options: BenchOptions, command: str = "") -> BenchResult:
    """Open the engine (and reference), measure what ``options`` ask for, close them; the result."""
    options.validate()
    spec = options.engine_spec()
    status = StatusLine("fornet bench", options.progress)
    status(f"opening {spec.path}")
    compared_specs = options.compared_specs()
    engine = Segmenter(spec)
    reference = None
    compared: list[Segmenter] = []
    try:
        for compared_spec in compared_specs:
            compared.append(Segmenter(compared_spec))
        _check_distinct_labels([engine, *compared])
        gate = None
        if options.data is not None:
            gate = bf16_gate([engine, *compared], options.data, options.split, limit=options.limit,
                             max_drop=options.max_miou_drop, boundary_width=options.boundary_width,
                             progress=options.progress) or None
            enforce(gate or {}, options.bf16_gate)
        reference_spec = options.reference_spec(engine.input_size)
        if reference_spec is not None:
            status(f"opening the PyTorch reference {options.ckpt}")
            reference = Segmenter(reference_spec)
        environment = collect_environment(_threads(options))
        if options.speed:
            status(f"timing {len(SCOPES)} scopes, at least {options.timing.duration_s:g} s per model in each")
        speed = speed_benchmark(engine, reference, options, compared) if options.speed else None
        if options.data is not None:
            status(f"accuracy on {options.data} [{options.split}]")
        accuracy, overlays = (accuracy_benchmark(engine, reference, options, compared) if options.data is not None
                              else (None, []))
        record = BenchReport(
            fornet_version=__version__, command=command,
            engine=EngineUnderTest(path=str(spec.path), backend=engine.backend.label,
                                   model=engine.io.describe(), input_size=engine.input_size, batch=engine.io.batch,
                                   precision=engine.io.export_precision, variant=engine.io.variant,
                                   gpu_prepost=engine.gpu_prepost, cuda_graph=spec.cuda_graph),
            reference=None if reference is None else ReferenceModel(str(options.ckpt), reference.backend.label),
            environment=replace(environment, load_average_after=load_average()),
            trtexec=trtexec_command(spec.path, engine.io, options.timing, options.batch, spec.cuda_graph,
                                    spec.plugin) if engine.backend_name == "tensorrt" else None,
            speed=speed, accuracy=accuracy, bf16_gate=gate,
        )
    finally:
        for seg in (engine, *compared, reference):
            if seg is not None:
                seg.close()
    return BenchResult(record, overlays)
