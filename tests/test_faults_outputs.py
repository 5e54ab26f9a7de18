"""Output paths are checked before any work; close() races with submit() from other threads."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fornet.cli.bench import main as bench_main
from fornet.cli.eval import main as eval_main
from fornet.runtime import Segmenter
from fornet.runtime.segmenter import SegmenterError

pytestmark = pytest.mark.fault


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("the work started before the output path was checked")


@pytest.fixture()
def blocked(tmp_path: Path) -> dict[str, Path]:
    """A directory where a file is expected, a file where a folder is expected, a path under a file."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    return {"dir": tmp_path / "dir", "file": tmp_path / "file", "under_file": tmp_path / "file" / "sub" / "out.json"}


@pytest.mark.parametrize(("flag", "kind", "message"), [
    ("--json", "dir", "is a directory"), ("--json", "under_file", "is a file, not a directory"),
    ("--save-predictions", "file", "is a file"),
])
def test_eval_checks_outputs_first(lite: Any, synth_root: Path, blocked: dict[str, Path], flag: str, kind: str,
                                   message: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("fornet.cli.eval.scan_split", _no_work)
    monkeypatch.setattr("fornet.cli.eval.evaluate", _no_work)
    assert eval_main(["--ckpt", str(lite.checkpoint), "--data", str(synth_root), flag, str(blocked[kind])]) == 2
    err = capsys.readouterr().err
    assert flag in err and message in err


@pytest.mark.parametrize(("flag", "kind", "message"), [("--json", "dir", "is a directory"),
                                                       ("--report", "file", "is a file")])
def test_bench_checks_outputs_first(lite: Any, blocked: dict[str, Path], flag: str, kind: str, message: str,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("fornet.cli.bench.run_benchmark", _no_work)
    assert bench_main(["--engine", str(lite.onnx), "--device", "cpu", flag, str(blocked[kind])]) == 2
    err = capsys.readouterr().err
    assert flag in err and message in err


def test_close_races_with_submit_from_threads(lite: Any) -> None:
    seg = Segmenter(lite.onnx, device="cpu", threads=1)
    frame = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    futures: list[Future[Any]] = []
    refused: list[Exception] = []
    start = threading.Barrier(5)

    def submitter() -> None:
        start.wait()
        for _ in range(20):
            try:
                futures.append(seg.submit(frame))
            except SegmenterError as exc:
                refused.append(exc)

    def closer() -> None:
        start.wait()
        seg.close()

    threads = [threading.Thread(target=submitter) for _ in range(4)] + [threading.Thread(target=closer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "close() deadlocked with submit()"
    for future in futures:  # every accepted frame is finished or refused with a SegmenterError, none hangs
        with contextlib.suppress(SegmenterError):
            assert future.result(timeout=60).shape == frame.shape[:2]
    assert len(futures) + len(refused) == 80
    seg.close()
