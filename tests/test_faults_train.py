"""Fault injection into training runs: kills while checkpoints are saved, repeated commands, bad data.

The promise (docs/reliability.md): after a kill, ``last.pth`` and ``best.pth`` load, ``last.pth``
never records a better best score than ``best.pth`` holds, and ``--resume`` takes the score of
``best.pth``; a finished run is never overwritten without ``--overwrite``; a bad image or label
is found before any work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fornet.cli.eval import main as eval_main
from fornet.cli.train import main
from fornet.model.checkpoint import read_checkpoint
from fornet.model.train_state import TrainState, reconcile_best
from tests.helpers.faults import killed, run_fornet

pytestmark = pytest.mark.fault
FAST = ["--variant", "lite", "--crop", "64x128", "--batch", "2", "--log-every", "1", "--workers", "0", "--quiet"]
#: Points of the second validation's save (the first one's files are the previous artefacts).
SAVE_POINTS = ["train.before_save@2", "atomic.best.pth@2", "train.between_saves@2", "atomic.last.pth@2",
               "train.after_saves@2", "atomic.best.pth@1", "train.between_saves@1"]


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), *FAST, *extra]


@pytest.mark.slow
@pytest.mark.parametrize("point", SAVE_POINTS)
def test_kill_during_checkpoint_save(point: str, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_fornet("train", *_train_args(synth_root, out, "--iters", "2", "--val-every", "1"), fault=point)
    assert killed(result), f"{point} was not reached: {result.stderr[-2000:]}"
    last = read_checkpoint(out / "last.pth") if (out / "last.pth").exists() else None
    best = read_checkpoint(out / "best.pth") if (out / "best.pth").exists() else None
    if last is not None:
        assert best is not None, "last.pth records a best score but best.pth is missing"
        assert last["best_miou"] is None or best["miou"] >= last["best_miou"], \
            "last.pth records a better best score than best.pth holds"
        state = TrainState(step=int(last["iteration"]), best_miou=last["best_miou"])
        reconcile_best(state, out / "best.pth")
        assert state.best_miou == best["miou"]


@pytest.mark.slow
def test_resume_after_a_kill_between_the_saves_repairs_the_best_score(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert killed(run_fornet("train", *_train_args(synth_root, out, "--iters", "2", "--val-every", "1"),
                             fault="train.between_saves@1"))
    assert (out / "best.pth").is_file() and not (out / "last.pth").exists()
    # nothing to resume from yet: a new run needs --overwrite, and then finishes
    assert main(_train_args(synth_root, out, "--iters", "2", "--val-every", "1")) == 2
    assert main(_train_args(synth_root, out, "--iters", "2", "--val-every", "1", "--overwrite")) == 0
    best, last = read_checkpoint(out / "best.pth"), read_checkpoint(out / "last.pth")
    assert last["best_miou"] == best["miou"]


def test_reconcile_best_takes_the_score_of_best_pth(tmp_path: Path, synth_root: Path) -> None:
    out = tmp_path / "run"
    assert main(_train_args(synth_root, out, "--iters", "1", "--val-every", "1")) == 0
    best = read_checkpoint(out / "best.pth")["miou"]
    state = TrainState(step=1, best_miou=best - 0.25)
    assert "a save was interrupted" in str(reconcile_best(state, out / "best.pth")) and state.best_miou == best
    (out / "best.pth").unlink()
    assert "is missing" in str(reconcile_best(state, out / "best.pth")) and state.best_miou is None
    (out / "best.pth").write_bytes(np.random.default_rng(0).bytes(200))
    state.best_miou = 0.5
    assert "cannot be read" in str(reconcile_best(state, out / "best.pth")) and state.best_miou is None


def test_repeating_a_finished_run_without_resume_is_refused(synth_root: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(_train_args(synth_root, out, "--iters", "1", "--val-every", "1")) == 0
    before = {name: (out / name).read_bytes() for name in ("last.pth", "best.pth", "metrics.jsonl")}
    capsys.readouterr()
    assert main(_train_args(synth_root, out, "--iters", "1", "--val-every", "1")) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert main(["--out", str(out), "--resume", "--overwrite"]) == 2


def _corrupt_copy(synth_root: Path, tmp_path: Path, split: str, what: str) -> tuple[Path, Path]:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    folder = "leftImg8bit" if what == "image" else "gtFine"
    pattern = "*_leftImg8bit.png" if what == "image" else "*_gtFine_labelIds.png"
    victim = sorted((data / folder / split).rglob(pattern))[-1]
    if what == "image":
        victim.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a PNG signature, then nothing decodable
    elif what == "small label":
        import cv2

        cv2.imwrite(str(victim), np.zeros((8, 8), np.uint8))
    else:
        victim.unlink()
    return data, victim


@pytest.mark.parametrize(("split", "what"), [("train", "image"), ("val", "small label"), ("train", "no label")])
def test_bad_data_is_found_before_training(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           split: str, what: str) -> None:
    data, victim = _corrupt_copy(synth_root, tmp_path, split, what)
    out = tmp_path / "run"
    assert main(_train_args(data, out, "--iters", "1")) == 2
    err = capsys.readouterr().err
    assert victim.name.split("_gtFine")[0].split("_leftImg8bit")[0] in err
    assert "require_labels" not in err, "CLI users are not told about a Python argument"
    assert not (out / "config.json").exists() and not (out / "last.pth").exists()
    code = run_fornet("data", "check", "--root", str(data), "--split", split).returncode
    assert code == 2, "fornet-data check must refuse what training refuses"


def test_bad_data_is_found_before_evaluation(synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = _corrupt_copy(synth_root, tmp_path, "val", "image")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint must not be loaded before the data set is checked")

    monkeypatch.setattr("fornet.model.checkpoint.load_model", no_work)
    assert eval_main(["--ckpt", str(tmp_path / "missing.pth"), "--data", str(data)]) == 2
    assert "_leftImg8bit.png" in capsys.readouterr().err


def test_full_disk_while_best_pth_is_saved_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import torch

    from fornet.model import build_model, save_checkpoint

    model = build_model("lite")
    path = tmp_path / "best.pth"
    save_checkpoint(path, model, "lite", extra={"miou": 0.5})
    before = path.read_bytes()

    def save_until_full(payload: object, target: Path) -> None:
        Path(target).write_bytes(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, model, "lite", extra={"miou": 0.9})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["best.pth"]
