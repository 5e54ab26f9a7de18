"""Training: schedule, data stream, run folder, CLI runs on the synthetic data set, resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fornet.cli.train import main
from fornet.model import build_model, load_model
from fornet.model.checkpoint import read_checkpoint
from fornet.model.train import _Trainer, train
from fornet.model.train_config import TrainConfig, TrainConfigError, run_differences
from fornet.model.train_data import EpochStream
from fornet.model.train_run import MetricsLine, RunConfigFile, RunFolder, RunRecordError
from fornet.model.train_state import build_optimizer, warmup_poly

FAST = ["--variant", "lite", "--crop", "64x128", "--batch", "2", "--log-every", "1", "--workers", "0",
        "--quiet"]


def cli(data: Path, out: Path, *extra: str) -> int:
    return main(["--data", str(data), "--out", str(out), *FAST, *extra])


def records(out: Path, kind: str) -> list[MetricsLine]:
    return [line for line in MetricsLine.read_lines(out / "metrics.jsonl") if line.kind == kind]


# ---------------------------------------------------------------- schedule and optimiser
def test_warmup_poly_by_hand() -> None:
    assert warmup_poly(0, 100, 10) == pytest.approx(0.1)
    assert warmup_poly(9, 100, 10) == pytest.approx(1.0)
    assert warmup_poly(10, 100, 10) == pytest.approx(1.0)
    assert warmup_poly(55, 100, 10) == pytest.approx(0.5 ** 0.9)
    assert warmup_poly(99, 100, 10) == pytest.approx((1 / 90) ** 0.9)
    assert warmup_poly(0, 5, 0) == 1.0


def test_optimizer_follows_schedule_and_skips_decay_on_norms() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    config = TrainConfig(data="d", out="o", variant="lite", iters=20, warmup_iters=5, lr=0.01,
                         weight_decay=0.05)
    optimizer, scheduler = build_optimizer(model, config)
    decay, no_decay = optimizer.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3, 3, 3)] and decay["weight_decay"] == 0.05
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0  # conv bias, BN weight/bias
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.002, 0.004, 0.006, 0.008, 0.01] + [0.01 * (1 - i / 15) ** 0.9 for i in range(15)]
    np.testing.assert_allclose(seen, expected, rtol=1e-9)


# ---------------------------------------------------------------- data stream
def test_epoch_stream_shards_every_epoch_and_resumes_exactly() -> None:
    def take(stream: EpochStream, n: int) -> list[tuple[int, int]]:
        it = iter(stream)
        return [next(it) for _ in range(n)]

    rank0, rank1 = take(EpochStream(7, 0, 2, seed=3), 8), take(EpochStream(7, 1, 2, seed=3), 8)
    for epoch in (0, 1):
        ours = [i for e, i in rank0 + rank1 if e == epoch]
        assert len(ours) == 8 and set(ours) == set(range(7))  # 7 samples padded to 8
    assert [i for _, i in rank0[:4]] != [i for _, i in rank0[4:]]  # reshuffled per epoch
    full = take(EpochStream(7, 0, 1, seed=3), 20)
    assert take(EpochStream(7, 0, 1, seed=3, start=9), 11) == full[9:]
    assert take(EpochStream(7, 0, 1, seed=4), 7) != full[:7]


# ---------------------------------------------------------------- configuration
def test_config_roundtrip_defaults_and_differences() -> None:
    config = TrainConfig(data="d", out="o", variant="lite", iters=300, crop=(256, 256))
    assert config.warmup_iters == 30
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    moved = TrainConfig.from_dict(config.to_dict(), out="elsewhere", workers=3, device="cpu", val_every=7)
    assert run_differences(config, moved) == []
    changed = TrainConfig.from_dict(config.to_dict(), lr=0.5, batch=3)
    assert run_differences(config, changed) == ["batch: 8 -> 3", "lr: 0.001 -> 0.5"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(TrainConfigError, match=r"unknown variant 'r9'.*iters must be >= 1.*scale"):
        TrainConfig(data="d", out="o", variant="r9", iters=0, scale=(2.0, 1.0))
    with pytest.raises(TrainConfigError, match="missing --data, --variant"):
        TrainConfig.from_dict({"out": "o"})
    with pytest.raises(TrainConfigError, match="unknown training option"):
        TrainConfig.from_dict({"data": "d", "out": "o", "variant": "lite", "learning_rate": 1})


def test_run_folder_files_of_the_first_layout_still_load(tmp_path: Path) -> None:
    """config.json and metrics.jsonl as written before they carried a format tag: read, and rewritten tagged."""
    folder = RunFolder(tmp_path)
    folder.config.write_text(json.dumps({
        "data": str(tmp_path / "data"), "out": str(tmp_path), "variant": "lite", "crop": [64, 128],
        "scale": [0.5, 2.0], "iters": 4, "batch": 2, "lr": 0.001, "warmup_iters": 0, "seed": 3, "val_size": None,
        "workers": 0, "device": "cpu", "amp": None, "amp_dtype": None, "log_every": 1}))
    config = folder.saved_config()
    assert config is not None and config.crop == (64, 128) and config.seed == 3 and config.val_every == 4000
    lines = [{"iter": 1, "kind": "train", "lr": 0.001, "s_per_iter": 0.5, "loss": 2.0, "ce": 1.0, "dice": 0.5,
              "sel": None},
             {"iter": 2, "kind": "val", "miou": 0.25, "iou": [0.5, None]},
             {"iter": 3, "kind": "train", "lr": 0.001, "s_per_iter": 0.5, "loss": 1.5, "ce": 1.0, "dice": 0.5,
              "sel": 0.0}]
    folder.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"iter": 4, "ki')  # torn append
    folder.truncate_metrics(2)
    kept = MetricsLine.read_lines(folder.metrics)
    assert kept == [MetricsLine(1, "train", lr=0.001, s_per_iter=0.5, loss=2.0, ce=1.0, dice=0.5),
                    MetricsLine(2, "val", miou=0.25, iou=(0.5, None))]
    assert all(json.loads(line)["format"] == "fornet-deploy/train-metrics/1"
               for line in folder.metrics.read_text().splitlines())
    RunConfigFile(config).save(folder.config)
    assert RunConfigFile.load(folder.config).config == config
    assert json.loads(folder.config.read_text())["format"] == "fornet-deploy/train-config/2"


def test_damaged_run_folder_files_are_refused_with_the_fix(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.config.write_text(json.dumps({"format": "fornet-deploy/train-config/2",
                                         "config": {"data": "d", "out": "o", "variant": "lite", "iters": 0}}))
    with pytest.raises(RunRecordError, match=r"config.json is a damaged .*iters must be >= 1.*delete that file"):
        folder.saved_config()
    folder.config.write_text(json.dumps({"format": "fornet-deploy/train-config/2",
                                         "config": {"data": "d", "out": "o", "variant": "lite", "crop": [64, "x"]}}))
    with pytest.raises(RunRecordError, match=r"config\.crop\.1: Input should be a valid integer"):
        folder.saved_config()
    folder.metrics.write_text('{"iter": 1, "kind": "train"}\n{"iter": "2", "kind": "val"}\n')
    with pytest.raises(RunRecordError, match=r"metrics.jsonl line 2 is a damaged .*iter: .*--overwrite"):
        folder.truncate_metrics(1)
    line = MetricsLine(5, "train", loss=float("nan"), lr=float("inf"))
    assert line.loss is None and line.lr is None and "NaN" not in line.to_line() and "miou" not in line.to_line()


# ---------------------------------------------------------------- CLI runs
@pytest.fixture(scope="module")
def straight_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 uninterrupted steps, validating at 2 and 4 (crop larger than the 128x256 images: padding)."""
    out = tmp_path_factory.mktemp("train") / "run"
    assert cli(synth_root, out, "--crop", "144x272", "--iters", "4", "--val-every", "2") == 0
    return out


def test_run_folder_contents(straight_run: Path, synth_root: Path) -> None:
    assert {p.name for p in straight_run.iterdir()} >= {"config.json", "last.pth", "best.pth", "train.log",
                                                         "metrics.jsonl"}
    config = RunConfigFile.load(straight_run / "config.json").config
    assert config.crop == (144, 272) and config.iters == 4 and config.data == str(synth_root)
    train_steps = [r.iter for r in records(straight_run, "train")]
    assert train_steps == [1, 2, 3, 4]
    assert all(r.loss is not None and np.isfinite([r.loss, r.ce, r.dice, r.sel]).all()
               for r in records(straight_run, "train"))
    vals = records(straight_run, "val")
    assert [r.iter for r in vals] == [2, 4] and all(r.miou is not None and 0.0 <= r.miou <= 1.0 for r in vals)
    assert all(r.iou is not None and len(r.iou) == 19 for r in vals)
    assert "val mIoU" in (straight_run / "train.log").read_text()


def test_checkpoints_load_and_hold_resumable_state(straight_run: Path) -> None:
    last, best = read_checkpoint(straight_run / "last.pth"), read_checkpoint(straight_run / "best.pth")
    assert last["iteration"] == 4 and last["variant"] == "lite" and last["train_config"]["iters"] == 4
    assert {"optimizer", "scheduler", "rng", "best_miou"} <= set(last)
    vals = records(straight_run, "val")
    best_val = max(vals, key=lambda r: r.miou or 0.0)
    assert best["iteration"] == best_val.iter and last["best_miou"] == pytest.approx(best_val.miou)
    for path in ("last.pth", "best.pth"):
        model = load_model(straight_run / path)
        assert model.checkpoint_info.variant == "lite" and not model.training
    # training changed the weights, and best.pth holds those of its own step
    torch.manual_seed(0)
    initial = build_model("lite").state_dict()["classifier.weight"]
    assert not torch.equal(initial, last["model"]["classifier.weight"])
    same = torch.equal(best["model"]["classifier.weight"], last["model"]["classifier.weight"])
    assert same == (best["iteration"] == 4)


def test_interrupted_run_resumes_to_the_same_weights(straight_run: Path, synth_root: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    step = _Trainer._step

    def crash_in_step_4(self: _Trainer, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        if self.state.step == 3:
            raise KeyboardInterrupt
        return step(self, images, labels)

    monkeypatch.setattr(_Trainer, "_step", crash_in_step_4)
    assert cli(synth_root, out, "--crop", "144x272", "--iters", "4", "--val-every", "2") == 130
    assert read_checkpoint(out / "last.pth")["iteration"] == 2
    assert [r.iter for r in records(out, "train")] == [1, 2, 3]
    monkeypatch.setattr(_Trainer, "_step", step)

    # Resume with only --out: every other option comes from the checkpoint.
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert [r.iter for r in records(out, "train")] == [1, 2, 3, 4]  # the stale step-3 record is gone
    ours, theirs = read_checkpoint(out / "last.pth"), read_checkpoint(straight_run / "last.pth")
    assert ours["iteration"] == 4
    for key, value in theirs["model"].items():
        torch.testing.assert_close(ours["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    np.testing.assert_allclose([r.loss for r in records(out, "train")],
                               [r.loss for r in records(straight_run, "train")], rtol=1e-5)


def test_resume_of_a_finished_run_does_nothing(straight_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(straight_run, out)
    result = train(TrainConfig.from_dict(read_checkpoint(out / "last.pth")["train_config"], out=str(out)),
                   resume=out / "last.pth", progress=False)
    assert result.iterations == 4 and result.best_checkpoint == out / "best.pth"


def test_same_folder_starts_over_only_with_overwrite(straight_run: Path, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    shutil.copytree(straight_run, out)
    (out / "last.pth").unlink()
    assert cli(synth_root, out, "--crop", "144x272", "--iters", "4", "--val-every", "0") == 2  # holds a run
    assert cli(synth_root, out, "--crop", "144x272", "--iters", "4", "--val-every", "0", "--overwrite") == 0
    assert [r.iter for r in records(out, "train")] == [1, 2, 3, 4]  # old records were dropped
    assert [r.iter for r in records(out, "val")] == [4]
    assert read_checkpoint(out / "last.pth")["iteration"] == 4


# ---------------------------------------------------------------- bad inputs
def test_resume_needs_a_training_checkpoint(straight_run: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "weights.pth"
    torch.save(load_model(straight_run / "best.pth").state_dict(), bare)
    assert main(["--out", str(tmp_path / "run"), "--resume", str(bare)]) == 2
    assert "not a resumable fornet-train checkpoint" in capsys.readouterr().err

def test_out_with_another_run_needs_resume(straight_run: Path, synth_root: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(synth_root, straight_run, "--crop", "144x272", "--iters", "4", "--lr", "0.01") == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "lr: 0.001 -> 0.01" in err and "--resume" in err


def test_resume_with_changed_schedule_is_refused(straight_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(straight_run), "--resume", "--iters", "8", "--quiet"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_resume_of_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--resume", str(tmp_path / "x.pth")]) == 2
    assert "x.pth does not exist" in capsys.readouterr().err


def test_data_without_val_split(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    for sub in ("leftImg8bit", "gtFine"):
        shutil.copytree(synth_root / sub / "train", data / sub / "train")
    assert cli(data, tmp_path / "run", "--iters", "1") == 2
    err = capsys.readouterr().err
    assert "split 'val'" in err and not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--amp", "--device", "cpu"], "--amp needs a CUDA device"),
    (["--iters", "0"], "iters must be >= 1"),
    (["--pretrained-backbone", "missing.pth"], "missing.pth does not exist"),
])
def test_bad_options(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     extra: list[str], message: str) -> None:
    assert cli(synth_root, tmp_path / "run", *extra) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_gpu(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(synth_root, tmp_path / "run", "--device", "cuda") == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


def test_new_run_needs_data_and_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "run")]) == 2
    assert "missing --data, --variant" in capsys.readouterr().err


# ---------------------------------------------------------------- torchrun / DDP
@pytest.mark.slow
def test_torchrun_two_cpu_processes(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "fornet", "train", "--data", str(synth_root), "--out", str(out), *FAST,
           "--batch", "1", "--iters", "3", "--val-every", "0", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = read_checkpoint(out / "last.pth")
    assert last["iteration"] == 3 and last["world_size"] == 2
    assert "x 2 process(es)" in (out / "train.log").read_text()
    assert [r.iter for r in records(out, "train")] == [1, 2, 3]
    load_model(out / "best.pth")


def test_augmented_samples_depend_only_on_seed_epoch_and_index(synth_root: Path) -> None:
    from fornet.calibration.cityscapes import CityscapesDataset
    from fornet.model.config import IMAGENET_MEAN, IMAGENET_STD
    from fornet.model.train_data import AugmentedTrainSet

    data = CityscapesDataset(synth_root, "train")
    first = AugmentedTrainSet(data, (64, 96), (0.5, 2.0), 0, IMAGENET_MEAN, IMAGENET_STD)
    other = AugmentedTrainSet(data, (64, 96), (0.5, 2.0), 0, IMAGENET_MEAN, IMAGENET_STD)
    x, y = first[(1, 2)]
    first[(0, 0)]  # drawing other samples in between changes nothing
    x2, y2 = other[(1, 2)]
    assert x.shape == (3, 64, 96) and x.dtype == torch.float32 and y.shape == (64, 96) and y.dtype == torch.uint8
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, first[(2, 2)][0])  # another epoch, another augmentation
    # normalisation is the shared preprocess: undoing it gives back uint8 pixel values
    pixels = x.numpy() * np.array(IMAGENET_STD)[:, None, None] + np.array(IMAGENET_MEAN)[:, None, None]
    np.testing.assert_allclose(pixels * 255, np.round(pixels * 255), atol=1e-3)
    assert set(np.unique(y.numpy())) <= set(range(19)) | {255}
