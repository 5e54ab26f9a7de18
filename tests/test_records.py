"""The one contract for files we write and read back: typed records with one refusing reader."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fornet.atomic import atomic_path, published_mode, write_text_atomic
from fornet.errors import FornetError, RecordError
from fornet.export.int8.manifest import CalibrationMismatchError, Int8Manifest
from fornet.runtime.bench.record import BenchReport
from fornet.runtime.model_io import ModelSidecar, SidecarError
from fornet.runtime.tensorrt.plan_metadata import EngineMetadata, EngineMetadataError
from tests.helpers.engine_metadata import ORIN

MANIFEST = Int8Manifest(status="passed", calibration_key={"k": 1}, calibration={}, ranges={"sha256": "0"},
                        quantization={}, accuracy_gate=None, sensitivity=None)
BENCH = BenchReport(fornet_version="0.1.0", command="fornet-bench", engine={}, reference=None, environment={},
                    trtexec=None)
RECORDS = [(ORIN, EngineMetadataError), (MANIFEST, CalibrationMismatchError), (BENCH, RecordError)]


def test_every_record_type_keeps_one_format_id() -> None:
    ids = [cls.FORMAT for cls in (ModelSidecar, EngineMetadata, Int8Manifest, BenchReport)]
    assert len(set(ids)) == len(ids) and all(i.startswith("fornet-deploy/") for i in ids)


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
