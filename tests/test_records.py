"""The one contract for files we write and read back: typed records, typed to the leaves, with one refusing
reader, readers of previous versions, and JSON-lines records."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
import stat
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import pydantic_core
import pytest
import tomllib

from fornet.atomic import atomic_path, published_mode, write_text_atomic
from fornet.calibration.int8_calibrate import CalibrationRangesError
from fornet.calibration.synth import SyntheticDataset, SyntheticMarkerError
from fornet.errors import FornetError, RecordError
from fornet.export.int8.manifest import CalibrationMismatchError, Int8Manifest, MethodKey
from fornet.export.int8.modelopt_worker import ModelOptJob, ModelOptJobError
from fornet.export.tensorrt.options import BuildOptions
from fornet.export.transaction import JournalError, PublishJournal
from fornet.model.config import VARIANTS
from fornet.model.evaluate import EvalReport
from fornet.model.train_config import TrainConfig
from fornet.model.train_run import RunConfigFile, RunRecordError
from fornet.records import LineRecord, Record
from fornet.runtime.bench.record import BenchReport
from fornet.runtime.model_io import ModelSidecar, SidecarError
from fornet.runtime.tensorrt.backend import allows_host_code, check_engine_compatibility
from fornet.runtime.tensorrt.plan_metadata import (
    BuildSettings,
    CalibrationCacheInfo,
    EngineMetadata,
    EngineMetadataError,
    ShapeProfile,
)
from fornet.runtime.video.sinks import FrameLine
from tests.helpers.engine_metadata import ORIN
from tests.helpers.record_samples import BENCH, MANIFEST, RANGES

ROOT = Path(__file__).resolve().parents[1]
EVAL = EvalReport(num_classes=2, ignore_index=255, pixels=10, miou=0.5, pixel_accuracy=0.75,
                  iou={"road": 1.0, "sidewalk": None}, confusion_matrix=((5, 0), (2, 3)), invalid_predictions=(0, 0),
                  n_images=1, seconds=0.5, model="lite.pth", variant="lite", data="data", split="val",
                  input_size=(64, 128), device="cpu", fornet_version="0.1.0")
RECORDS = [
    (ORIN, EngineMetadataError), (MANIFEST, CalibrationMismatchError), (BENCH, RecordError),
    (RANGES, CalibrationRangesError), (EVAL, RecordError),
    (RunConfigFile(TrainConfig(data="/data", out="run", variant="lite")), RunRecordError),
    (SyntheticDataset("fornet.calibration.synth", 4, 2, (64, 96), 0, None), SyntheticMarkerError),
    (ModelOptJob("a.onnx", "s.cache", "c.npy", "q.onnx", ("/head/Conv",)), ModelOptJobError),
    (PublishJournal(".fornet-staging-1", ("fornet.onnx",), ()), JournalError),
]


#: Packages that load only inside GStreamer's Python (the fornetseg element imports python3-gi); they write
#: no record.
GSTREAMER_PACKAGES = ("fornet.runtime.video.gst_element",)


def _package_modules() -> list[str]:
    """Every module of the installed packages (``[tool.setuptools] packages`` of pyproject.toml), but those
    of :data:`GSTREAMER_PACKAGES`."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    modules = []
    for name in packages:
        if name in GSTREAMER_PACKAGES:
            continue
        package = importlib.import_module(name)
        modules += [f"{name}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                    if not m.ispkg and m.name != "__main__"]
    return modules


def _record_classes() -> list[type[Record]]:
    """Every record class of the package (after importing all its modules)."""
    for module in _package_modules():
        importlib.import_module(module)
    found, todo = [], [Record]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("fornet."):
                found.append(sub)
    return found


def _untyped(annotation: Any, where: str, seen: set[type]) -> list[str]:
    """Where ``annotation`` (or a type inside it) is not a typed JSON leaf, a typed container or a dataclass."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (str, int, float, bool, type(None)) or origin is Literal:
        return []
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if annotation in seen:
            return []
        seen.add(annotation)
        hints = typing.get_type_hints(annotation)
        return [problem for f in dataclasses.fields(annotation)
                for problem in _untyped(hints[f.name], f"{where}.{f.name}", seen)]
    if origin in (typing.Union, types.UnionType):
        return [problem for arg in args for problem in _untyped(arg, where, seen)]
    if origin is dict and len(args) == 2:
        keys = [] if args[0] is str else [f"{where}: keys of {annotation} are not str"]
        return keys + _untyped(args[1], f"{where}[]", seen)
    if origin in (list, tuple) and args:
        return [problem for arg in args if arg is not Ellipsis for problem in _untyped(arg, f"{where}[]", seen)]
    return [f"{where}: {annotation!r} is not typed to its leaves"]


def test_every_record_field_is_typed_to_the_leaves() -> None:
    """No ``Any``, bare ``dict``/``list``/``tuple``, ``dict[str, Any]`` or other untyped value in any record."""
    classes = _record_classes()
    assert {ModelSidecar, EngineMetadata, Int8Manifest, BenchReport, EvalReport, FrameLine} <= set(classes)
    problems = [p for cls in classes for p in _untyped(cls, cls.__qualname__, set())]
    assert problems == []


def test_the_type_check_catches_untyped_fields() -> None:
    @dataclasses.dataclass(frozen=True)
    class Loose:
        a: dict[str, Any]
        b: list  # type: ignore[type-arg]
        c: dict  # type: ignore[type-arg]
        d: tuple[int, Any]
        e: dict[str, tuple[float, ...]] | None
    assert [p.split(":")[0] for p in _untyped(Loose, "Loose", set())] == ["Loose.a[]", "Loose.b", "Loose.c",
                                                                          "Loose.d[]"]


def test_every_record_type_keeps_one_format_id_and_names_its_fix() -> None:
    classes = [cls for cls in _record_classes() if cls is not LineRecord]
    ids = [cls.FORMAT for cls in classes]
    assert len(set(ids)) == len(ids) and all(i.startswith("fornet-deploy/") for i in ids)
    assert all(cls.DESCRIPTION != Record.DESCRIPTION and cls.FIX != Record.FIX for cls in classes)
    assert all(issubclass(cls.ERROR, RecordError) for cls in classes)


@pytest.mark.parametrize(("record", "error"), RECORDS)
def test_round_trip(record, error, tmp_path: Path) -> None:
    path = record.save(tmp_path / "r.json")
    assert type(record).load(path) == record
    assert json.loads(path.read_text())["format"] == type(record).format_tag()


@pytest.mark.parametrize(("record", "error"), RECORDS)
@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"),
    ("{\"format\": ", "is not valid JSON"),
    ("[]", "not a JSON object"),
    ("{\"format\": \"someone-else/thing/1\"}", "it says format 'someone-else/thing/1'"),
    ("NEWER", "newer than this fornet-deploy reads"),
    ("MISTYPED", "is a damaged"),
    ("DIRECTORY", "is a directory"),
])
def test_the_reader_refuses_bad_files(record, error, content, message, tmp_path: Path) -> None:
    cls = type(record)
    path = tmp_path / "r.json"
    data = record.to_dict()
    if content == "NEWER":
        data["format"] = f"{cls.FORMAT}/{cls.VERSION + 1}"
        path.write_text(json.dumps(data))
    elif content == "MISTYPED":
        first = next(k for k in data if k != "format")
        data[first] = {"not": "this type"} if not isinstance(data[first], dict) else 12
        path.write_text(json.dumps(data))
    elif content == "DIRECTORY":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message) as info:
        cls.load(path)
    assert isinstance(info.value, FornetError) and str(path) in str(info.value) and cls.FIX in str(info.value)


def test_sidecar_errors_keep_their_class(tmp_path: Path) -> None:
    with pytest.raises(SidecarError, match="fornet-export writes it beside the ONNX file"):
        ModelSidecar.load(tmp_path / "missing.onnx.json")


@pytest.mark.parametrize(("record", "path", "value", "message"), [
    (ORIN, ["gpu", "compute_capability"], 8.7, r"gpu\.compute_capability: Input should be a valid string"),
    (ORIN, ["build_options", "version_compatible"], 1, r"build_options\.version_compatible: Input should be a valid "
                                                        r"boolean"),
    (MANIFEST, ["calibration_key", "method", "num_bins"], "2048", r"calibration_key\.method\.num_bins: Input should "
                                                                  r"be a valid integer"),
    (MANIFEST, ["accuracy_gate", "iou", "road", "delta"], [1], r"accuracy_gate\.iou\.road\.delta: Input should be"),
    (BENCH, ["speed", "scopes", "compute", "results", "onnxruntime-cpu", "samples_ms", 1], "2",
     r"speed\.scopes\.compute\.results\.onnxruntime-cpu\.samples_ms\.1: Input should be a valid number"),
    (RANGES, ["ranges", "image"], [1.0], r"ranges\.image\.1: Field required"),
])
def test_a_wrong_type_deep_inside_is_refused_naming_file_and_field(record: Record, path: list, value: Any,
                                                                   message: str, tmp_path: Path) -> None:
    data = record.to_dict()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path / "r.json"
    file.write_text(json.dumps(data))
    with pytest.raises(type(record).ERROR, match=message) as info:
        type(record).load(file)
    assert str(file) in str(info.value) and type(record).FIX in str(info.value)


def test_a_record_holding_a_wrongly_typed_value_is_not_written(tmp_path: Path) -> None:
    wrong = dataclasses.replace(ORIN, build_options={"version_compatible": True})
    with pytest.raises(pydantic_core.PydanticSerializationError, match="build_options"):
        wrong.save(tmp_path / "fornet.plan.json")
    assert not (tmp_path / "fornet.plan.json").exists()


# ------------------------------------------------------------------------------ versions

class _RenamedError(RecordError):
    """A test record's file is unreadable."""


@dataclasses.dataclass(frozen=True)
class _Renamed(Record):
    """Version 3 renamed ``n`` to ``count``; version 2 is read, version 1 is not."""

    FORMAT: ClassVar[str] = "fornet-deploy/test-renamed"
    VERSION: ClassVar[int] = 3
    DESCRIPTION: ClassVar[str] = "test record"
    FIX: ClassVar[str] = "write it again"
    ERROR: ClassVar[type[RecordError]] = _RenamedError

    count: int

    @classmethod
    def upgrade(cls, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        return {"count": body["n"]} if version == 2 else None


def test_previous_versions_are_upgraded_or_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"format": "fornet-deploy/test-renamed/2", "n": 4}')
    assert _Renamed.load(path) == _Renamed(4)
    path.write_text('{"format": "fornet-deploy/test-renamed/1", "n": 4}')
    with pytest.raises(_RenamedError, match=r"r.json is a test record of version 1, older than this fornet-deploy "
                                            r"reads \(version 3\); write it again"):
        _Renamed.load(path)
    path.write_text('{"count": 4}')
    with pytest.raises(_RenamedError, match="it says format None"):
        _Renamed.load(path)  # no UNTAGGED_VERSION: an untagged file is not this record


def test_old_plan_metadata_loads(tmp_path: Path) -> None:
    """A plan sidecar as the first fornet-build wrote it (build options without the unset ones, untyped dicts)."""
    path = tmp_path / "fornet.plan.json"
    path.write_text(json.dumps({
        "format": "fornet-deploy/engine-sidecar/1", "fornet_deploy_version": "0.1.0",
        "plan": {"file": "fornet.plan", "sha256": "0" * 64}, "tensorrt_version": "10.3.0.26",
        "gpu": {"name": "Orin", "compute_capability": "8.7"}, "built_precision": "int8-legacy-calibration",
        "strongly_typed": False, "source_onnx": {"file": "fornet.onnx", "sha256": "1" * 64},
        "inputs": [{"name": "image", "shape": [-1, 3, 64, 128], "dtype": "FLOAT",
                    "profile": {"min": [1, 3, 64, 128], "opt": [1, 3, 64, 128], "max": [4, 3, 64, 128]}}],
        "outputs": [{"name": "logits", "shape": [-1, 19, 64, 128], "dtype": "FLOAT", "profile": None}],
        "build_options": {"workspace_mib": 1024, "version_compatible": True, "hardware_compat": "none",
                          "verbose": False},
        "plugin": {"library": "libfornet_plugins.so", "sha256": "2" * 64, "creator": "TopKGate/1/fornet"},
        "calibration_cache": {"file": "fornet.calib.cache", "sha256": "3" * 64, "tensorrt_version": 100300},
        "fornet_build_command": "fornet-build --onnx fornet.onnx"}))
    metadata = EngineMetadata.load(path)
    assert metadata.build_options == BuildSettings(workspace_mib=1024, version_compatible=True)
    assert metadata.inputs[0].profile == ShapeProfile((1, 3, 64, 128), (1, 3, 64, 128), (4, 3, 64, 128))
    assert metadata.calibration_cache == CalibrationCacheInfo("fornet.calib.cache", "3" * 64, 100300)
    assert metadata.plugin is not None and metadata.plugin.serialized_in_plan is False
    assert allows_host_code(metadata)
    check_engine_compatibility(Path("fornet.plan"), metadata, "10.4.0", (8, 7))  # version-compatible: runs


def test_recorded_build_settings_name_every_build_option() -> None:
    assert [f.name for f in dataclasses.fields(BuildSettings)] == [f.name for f in dataclasses.fields(BuildOptions)]


def test_old_int8_manifest_loads_with_an_equal_calibration_key(tmp_path: Path) -> None:
    """A manifest as the first --int8 export wrote it: its key still equals this version's, so it is reused."""
    path = tmp_path / "fornet_int8.json"
    gate = {"split": "val", "images": 4, "max_miou_drop_points": 1.0, "fp32_miou": 50.0, "int8_miou": 49.5,
            "miou_drop_points": 0.5, "pixel_agreement": 0.99, "boundary_agreement": 0.9, "boundary_width": 3,
            "selected_cells": [[3, 6, 10, 13]], "expected_cells": [3, 6, 10, 13], "k_exact": True,
            "mask_agreement": 1.0, "iou": {"road": {"fp32": 90.0, "int8": 89.5, "delta": -0.5}}, "passed": True}
    path.write_text(json.dumps({
        "format": "fornet-deploy/int8-manifest/1", "status": "passed",
        "calibration_key": {"fp32_onnx_sha256": "1" * 64, "images": {"split": "train", "count": 6, "sha256": "2" * 64},
                            "preprocessing": {"function": "fornet.calibration.preprocess.preprocess",
                                              "resize": "cv2.resize", "size": [64, 128],
                                              "input": "normalised float32 NCHW", "channel_order": "RGB",
                                              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                            "method": {"name": "minmax"}, "tools": {"fornet-deploy": "0.1.0", "onnxruntime": "1.22.0"}},
        "calibration": {"data": "data", "split": "train", "images": ["a.png", "b.png"], "reused": False,
                        "input_stats": {"min": [-2.0], "max": [2.5], "mean": [0.1], "values_per_channel": 100},
                        "seconds": 1.5},
        "ranges": {"file": "fornet_int8.ranges.json", "sha256": "3" * 64, "tensors": 40},
        "quantization": {"tool": "onnxruntime quantize_static (QDQ)", "op_types": ["Conv"],
                         "extra_options": {"ActivationSymmetric": True}, "activations": "INT8", "weights": "INT8",
                         "bias": "FP32", "float_nodes": ["/head/Conv"], "fallback_nodes": ["/decoder/Conv"],
                         "int8_convolutions": 20, "tensorrt_placement_issues": []},
        "accuracy_gate": {"data": "data", **gate},
        "sensitivity": {"images": 2, "metric": "fraction of pixels",
                        "ranking": [{"node": "/decoder/Conv", "disagreement": 0.2}],
                        "steps": [{"fallback": ["/decoder/Conv"], "int8_miou": 49.5, "miou_drop_points": 0.5,
                                   "passed": True}]},
        "tool": {"name": "fornet-deploy", "version": "0.1.0"},
        "int8_onnx": {"file": "fornet_int8.onnx", "sha256": "4" * 64},
        "trt_cache": {"file": "fornet.calib.cache", "sha256": "5" * 64, "tensors": 40, "header": "TRT-100300-",
                      "tensorrt_version": "10.3.0", "note": "n"},
        "tensorrt": {"file": "fornet_int8_tensorrt.onnx", "tool": "nvidia-modelopt 0.47.0",
                     "settings": {"quantize_mode": "int8", "high_precision_dtype": "fp32 (then fornet.export.fp16)",
                                  "calibration_eps": ["cpu"], "scales": "fornet_int8.ranges.json via a TensorRT cache"},
                     "base_precision": "fp16", "placement": "no issues",
                     "accuracy_gate": {"numerics": "ONNX Runtime, graph optimisations off", **gate},
                     "sha256": "6" * 64}}))
    manifest = Int8Manifest.load(path)
    assert manifest.calibration_key == MANIFEST.calibration_key
    assert manifest.calibration_key.method == MethodKey(name="minmax")
    assert manifest.sensitivity == MANIFEST.sensitivity and manifest.trt_cache == MANIFEST.trt_cache
    assert manifest.tensorrt is not None and manifest.tensorrt.accuracy_gate is not None
    assert manifest.tensorrt.accuracy_gate.numerics == "ONNX Runtime, graph optimisations off"
    assert manifest.accuracy_gate is not None and manifest.accuracy_gate.iou["road"].delta == -0.5


def test_old_bench_report_loads(tmp_path: Path) -> None:
    """A report as the first fornet-bench wrote it (no speed-up key, empty threads, parity as a dict)."""
    stats = {"iterations": 2, "batch": 1, "throughput_img_s": 666.7, "median_ms": 1.5, "p90_ms": 2.0,
             "p99_ms": 2.0, "max_ms": 2.0, "min_ms": 1.0, "mean_ms": 1.5, "cv": 0.47, "samples_ms": [1.0, 2.0]}
    scope = {"title": "t", "results": {"onnxruntime-cpu": stats, "pytorch-cpu": None}, "notes": []}
    score = {"num_classes": 1, "ignore_index": 255, "pixels": 4, "miou": 1.0, "pixel_accuracy": 1.0,
             "iou": {"road": 1.0}, "confusion_matrix": [[4]], "invalid_predictions": [0]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps({
        "format": "fornet-deploy/bench/1", "fornet_version": "0.1.0", "command": "fornet-bench", "trtexec": None,
        "engine": {"path": "x.onnx", "backend": "onnxruntime-cpu", "model": "m", "input_size": [8, 8], "batch": 1,
                   "precision": "fp32", "variant": "lite", "gpu_prepost": False, "cuda_graph": False},
        "reference": {"checkpoint": "x.pth", "backend": "pytorch-cpu"},
        "environment": {"platform": "p", "python": "3.11", "cpu": "c", "cpu_count": 2, "cpus_usable": 2,
                        "cpu_clock_mhz": None, "load_average": [0.5, 0.4, 0.3], "threads": {},
                        "versions": {"numpy": "2.0", "tensorrt": None}, "gpu": None, "jetson": None,
                        "load_average_after": [0.6, 0.4, 0.3]},
        "speed": {"frame_size": [8, 8], "batch": 1, "input_size": [8, 8],
                  "settings": {"warmup_s": 0.2, "min_iters": 10, "duration_s": 3.0, "description": "d"},
                  "timer": "t", "engine": "onnxruntime-cpu", "reference": "pytorch-cpu",
                  "scopes": {"compute": scope}, "stages": {"onnxruntime-cpu": {"pre_ms": 0.1, "infer_ms": 1.0,
                                                                               "post_ms": 0.1, "prepost_share": 0.15}},
                  "warnings": []},
        "accuracy": {"data": "d", "split": "val", "images": 1, "frames": "f", "predictions": None,
                     "scores": {"onnxruntime-cpu": score, "pytorch-cpu": score},
                     "miou": {"onnxruntime-cpu": 1.0, "pytorch-cpu": 1.0},
                     "parity": {"names": ["pytorch-cpu", "onnxruntime-cpu"], "boundary_width": 3, "pixels": 4,
                                "agreement": 1.0, "boundary_pixels": 0, "boundary_agreement": None,
                                "miou_delta": 0.0, "iou_delta": {"road": 0.0}, "text": "pixel agreement ..."}}}))
    report = BenchReport.load(path)
    assert report.speed is not None and report.speed.scopes["compute"].speedup is None
    assert report.environment.threads is not None and report.environment.threads.requested is None
    assert report.accuracy is not None and report.accuracy.parity is not None
    assert report.accuracy.parity.names == ("pytorch-cpu", "onnxruntime-cpu")


def test_old_model_sidecar_loads(tmp_path: Path) -> None:
    """An ONNX sidecar as the first fornet-export wrote it (config and verification as plain dicts)."""
    config = dataclasses.asdict(VARIANTS["lite"])
    path = tmp_path / "fornet.onnx.json"
    path.write_text(json.dumps({
        "format": "fornet-deploy/onnx-sidecar/1", "tool": {"name": "fornet-deploy", "version": "0.1.0"},
        "onnx": {"file": "fornet.onnx", "sha256": "0" * 64, "precision": "fp32", "opset": 17,
                 "custom_opsets": {"fornet": 1}},
        "checkpoint": {"file": "lite.pth", "sha256": "1" * 64}, "variant": "lite", "config": config,
        "classes": ["road", "sidewalk"], "colors": [[128, 64, 128], [244, 35, 232]],
        "input": {"name": "image", "dtype": "float32", "shape": [1, 3, 64, 128], "layout": "NCHW",
                  "description": "RGB", "size": [64, 128], "channel_order": "RGB", "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225], "normalization_in_graph": False, "dynamic_batch": False},
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2, 64, 128], "layout": "NCHW",
                     "description": "scores"}],
        "topk": {"ratios": [0.1, 0.2, 0.3, 0.4], "ks": [3, 6, 10, 13], "grid": [4, 8], "output_stride": 16,
                 "gate": "plugin", "node": None},
        "verification": {"precision": "fp32", "images": 1, "max_abs_logit_diff": 1e-5, "argmax_agreement": 1.0,
                         "threshold": 0.999, "mask_agreement": 1.0, "selected_cells": [[3, 6, 10, 13]],
                         "expected_cells": [3, 6, 10, 13], "passed": True}}))
    sidecar = ModelSidecar.load(path)
    assert sidecar.config == VARIANTS["lite"] and sidecar.activations is None
    assert sidecar.verification is not None and sidecar.verification.passed
    assert sidecar.model_io(str(path)).input_size == (64, 128)


# ------------------------------------------------------------------------------ JSON lines

def test_line_records_skip_a_torn_last_line_and_name_a_bad_one(tmp_path: Path) -> None:
    line = FrameLine(source="cam", source_id=0, frame=3, capture_time=1.0, result_time=1.5, age_s=0.5,
                     times={"infer": 0.01}, histogram=(5, 0, 2))
    path = tmp_path / "frames.jsonl"
    old = {k: v for k, v in line.to_dict().items() if k != "format"}  # written before the format tag
    path.write_text(line.to_line() + "\n" + json.dumps(old) + "\n" + line.to_line()[:20])
    assert FrameLine.read_lines(path) == [line, line]
    path.write_text(line.to_line() + line.to_line().replace('"frame": 3', '"frame": 3.5'))
    with pytest.raises(RecordError, match=r"frames.jsonl line 2 is a damaged .*frame: .*run fornet run again"):
        FrameLine.read_lines(path)
    path.write_text(line.to_line() + "{not json}\n")
    with pytest.raises(RecordError, match=r"frames.jsonl line 2 is not valid JSON"):
        FrameLine.read_lines(path)
    with pytest.raises(RecordError, match=r"missing.jsonl not found"):
        FrameLine.read_lines(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------------ atomic writes

def test_published_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640 == published_mode()
    finally:
        os.umask(old)
    write_text_atomic(tmp_path / "b.txt", "x")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o666 & ~old


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    script = ("import os, signal, sys\nfrom fornet.atomic import atomic_path\n"
              f"with atomic_path({str(target)!r}) as tmp:\n    tmp.write_bytes(b'half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    leftovers = list(tmp_path.glob(".model.onnx.*.tmp"))
    assert len(leftovers) == 1 and not target.exists()
    write_text_atomic(target, "whole")
    assert target.read_text() == "whole" and not list(tmp_path.glob(".model.onnx.*.tmp"))


def test_a_live_writers_temporary_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with atomic_path(target) as mine:
        mine.write_text("in progress")
        write_text_atomic(target, "other")  # a second writer in this (live) process
        assert mine.exists()
    assert target.read_text() == "in progress"


def test_a_directory_is_not_a_file_target(tmp_path: Path) -> None:
    (tmp_path / "out.json").mkdir()
    with pytest.raises(FornetError, match="is a directory; pass a file path"):
        write_text_atomic(tmp_path / "out.json", "x")
