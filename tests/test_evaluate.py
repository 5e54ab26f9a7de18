"""fornet.model.evaluate: predict_labels, evaluate and the fornet-eval CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fornet.calibration.cityscapes import CityscapesDataset, Sample
from fornet.calibration.labels import LABEL_TO_TRAIN, NUM_CLASSES, TRAIN_TO_LABEL
from fornet.cli.eval import main
from fornet.errors import RecordError
from fornet.model import IMAGENET_MEAN, IMAGENET_STD, save_checkpoint
from fornet.model.evaluate import EvalReport, EvaluationError, evaluate, predict_labels
from tests.helpers.model_utils import realistic_model


class SplitModel(nn.Module):
    """Logits favour class ``left`` on the left half of its input and ``right`` on the right half."""

    def __init__(self, left: int = 3, right: int = 5, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.left, self.right, self.num_classes = left, right, num_classes
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None, list[torch.Tensor]]:
        self.inputs.append(x.clone())
        b, _, h, w = x.shape
        logits = torch.zeros(b, self.num_classes, h, w)
        logits[:, self.left, :, : w // 2] = 1.0
        logits[:, self.right, :, w // 2:] = 1.0
        return logits, None, []


def gt_train_ids(root: Path, split: str = "val") -> dict[str, np.ndarray]:
    """Ground truth read straight from the labelIds PNGs, keyed by stem."""
    out = {}
    for path in sorted((root / "gtFine" / split).glob("*/*_gtFine_labelIds.png")):
        out[path.name.replace("_gtFine_labelIds.png", "")] = LABEL_TO_TRAIN[cv2.imread(str(path), -1)]
    return out


def brute_force_miou(preds: list[np.ndarray], gts: list[np.ndarray]) -> float:
    p, g = np.concatenate([a.ravel() for a in preds]), np.concatenate([a.ravel() for a in gts])
    p, g = p[g != 255], g[g != 255]
    ious = []
    for c in range(NUM_CLASSES):
        union = np.count_nonzero((p == c) | (g == c))
        if union:
            ious.append(np.count_nonzero((p == c) & (g == c)) / union)
    return float(np.mean(ious))


# ---------------------------------------------------------------- predict_labels


def test_predict_labels_resizes_input_and_upsamples_logits() -> None:
    model = SplitModel()
    image = np.random.default_rng(0).integers(0, 256, (96, 200, 3), dtype=np.uint8)
    pred = predict_labels(model, image, input_size=(64, 128))
    assert model.inputs[0].shape == (1, 3, 64, 128)
    assert pred.shape == (96, 200) and pred.dtype == np.uint8
    # bilinear (half-pixel) upsampling from 128 to 200 columns: output column x samples input
    # column (x + 0.5) * 128 / 200 - 0.5, which is left of the 63.5 midline for x <= 99
    assert (pred[:, :100] == 3).all() and (pred[:, 100:] == 5).all()


def test_predict_labels_normalises_with_the_checkpoint_statistics() -> None:
    image = np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    model = SplitModel()
    pred = predict_labels(model, image)
    expected = (image / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(model.inputs[0][0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert pred.shape == (16, 24)
    model.checkpoint_info = SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    predict_labels(model, image)
    expected = (image / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0])
    np.testing.assert_allclose(model.inputs[1][0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_predict_labels_on_fornet_matches_manual_forward() -> None:
    model = realistic_model("lite", seed=0).train()
    bn_before = model.stem[1].running_mean.clone()
    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    pred = predict_labels(model, image)
    assert model.training                                       # mode restored
    assert torch.equal(model.stem[1].running_mean, bn_before)   # ran in eval mode
    x = (image / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    x = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
    model.eval()
    with torch.no_grad():
        logits = model(x)[0][0]
    top2 = logits.topk(2, dim=0).values
    decisive = (top2[0] - top2[1] > 1e-4).numpy()               # skip near-ties
    np.testing.assert_array_equal(pred[decisive], logits.argmax(0).numpy()[decisive])


# ---------------------------------------------------------------- evaluate


def test_evaluate_constant_prediction_against_hand_computed_scores(synth_root: Path, tmp_path: Path) -> None:
    gts = gt_train_ids(synth_root)
    counts = np.bincount(np.concatenate([g.ravel() for g in gts.values()]), minlength=256)
    cls = int(np.argmax(counts[:NUM_CLASSES]))
    valid = int(counts[:NUM_CLASSES].sum())
    result = evaluate(SplitModel(cls, cls), CityscapesDataset(synth_root, "val"), progress=False,
                      save_dir=tmp_path / "pred")
    # predicting `cls` everywhere: IoU(cls) = |gt == cls| / valid, 0 for other present classes
    expected = np.where(counts[:NUM_CLASSES] > 0, 0.0, np.nan)
    expected[cls] = counts[cls] / valid
    np.testing.assert_allclose(result.iou, expected)
    assert result.miou == pytest.approx(float(np.nanmean(expected)))
    assert result.pixel_accuracy == pytest.approx(counts[cls] / valid)
    assert result.n_images == len(gts) and result.seconds > 0
    written = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert written == sorted(f"{stem}_pred_labelIds.png" for stem in gts)
    png = cv2.imread(str(tmp_path / "pred" / written[0]), cv2.IMREAD_UNCHANGED)
    assert png.shape == next(iter(gts.values())).shape and (png == TRAIN_TO_LABEL[cls]).all()
    report = result.to_report(model="c.pth", variant=None, data=str(synth_root), split="val", input_size=None,
                              device="cpu")
    assert report.n_images == len(gts) and report.miou == pytest.approx(result.miou)
    assert EvalReport.load(report.save(tmp_path / "scores.json")) == report


def test_evaluate_limit(synth_root: Path) -> None:
    model = SplitModel()
    result = evaluate(model, CityscapesDataset(synth_root, "val"), progress=False, limit=2)
    assert result.n_images == 2 and len(model.inputs) == 2


@pytest.mark.parametrize(("model", "dataset", "limit", "match"), [
    (SplitModel(), [], None, "no images"),
    (SplitModel(), [Sample(np.zeros((8, 8, 3), np.uint8), None, "x")], None, "no ground truth"),
    (SplitModel(), [Sample(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), "x")], 0, "at least 1"),
    (SplitModel(num_classes=7), [], None, "predicts 7 classes"),
])
def test_evaluate_rejects_bad_inputs(model: nn.Module, dataset: list, limit: int | None, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        evaluate(model, dataset, progress=False, limit=limit)


# ---------------------------------------------------------------- fornet-eval CLI


@pytest.fixture(scope="module")
def lite_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "lite.pth"
    save_checkpoint(path, realistic_model("lite", seed=0), "lite")
    return path


def test_cli_scores_match_saved_predictions(synth_root: Path, lite_ckpt: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out_json, pred_dir = tmp_path / "out" / "scores.json", tmp_path / "pred"
    rc = main(["--ckpt", str(lite_ckpt), "--data", str(synth_root), "--input-size", "128x256",
               "--device", "cpu", "--save-predictions", str(pred_dir), "--json", str(out_json)])
    assert rc == 0
    stdout = capsys.readouterr().out
    last = stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"mIoU: \d+\.\d\d", last)
    assert "traffic light" in stdout
    report = EvalReport.load(out_json)
    assert report.variant == "lite" and report.input_size == (128, 256) and report.miou is not None
    assert report.n_images == 4 and f"{100 * report.miou:.2f}" == last.split()[1]
    # independent: score the written labelId PNGs against the ground truth PNGs by hand
    gts = gt_train_ids(synth_root)
    preds = [LABEL_TO_TRAIN[cv2.imread(str(pred_dir / f"{s}_pred_labelIds.png"), -1)] for s in gts]
    assert report.miou == pytest.approx(brute_force_miou(preds, list(gts.values())), abs=1e-12)


def test_reports_written_before_the_format_tag_still_load(tmp_path: Path) -> None:
    """``fornet eval --json`` files of the first layout (no ``format`` field) load as version 1."""
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({
        "checkpoint": "lite.pth", "variant": "lite", "data": "data", "split": "val", "input_size": [128, 256],
        "device": "cpu", "fornet_version": "0.1.0", "num_classes": 2, "ignore_index": 255, "pixels": 10,
        "miou": 0.5, "pixel_accuracy": 0.75, "iou": {"road": 1.0, "sidewalk": None},
        "confusion_matrix": [[5, 0], [2, 3]], "invalid_predictions": [0, 0], "n_images": 1, "seconds": 0.5}))
    report = EvalReport.load(path)
    assert report.confusion_matrix == ((5, 0), (2, 3)) and report.iou["sidewalk"] is None
    assert report.model == "lite.pth"  # version 1's "checkpoint"
    path.write_text(path.read_text().replace('"pixels": 10', '"pixels": "10"'))
    with pytest.raises(RecordError, match=r"damaged fornet-deploy evaluation report \(pixels: Input should be a "
                                          r"valid integer\).*run fornet eval again"):
        EvalReport.load(path)


def test_cli_missing_checkpoint(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--ckpt", str(tmp_path / "nope.pth"), "--data", str(synth_root), "--device", "cpu"])
    assert rc == 2
    assert "error: checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["test", "nosuchsplit"])
def test_cli_empty_split(synth_root: Path, lite_ckpt: Path, split: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--ckpt", str(lite_ckpt), "--data", str(synth_root), "--split", split, "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no images" in err


def test_cli_missing_data_folder(lite_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ckpt", str(lite_ckpt), "--data", str(tmp_path / "none"), "--device", "cpu"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_bad_limit(synth_root: Path, lite_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--ckpt", str(lite_ckpt), "--data", str(synth_root), "--limit", "0", "--device", "cpu"])
    assert info.value.code == 2
    assert "argument --limit: expected a positive integer, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["128", "0x256", "axb"])
def test_cli_bad_input_size(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--ckpt", "x.pth", "--data", ".", "--input-size", size])
    assert info.value.code == 2
    assert "argument --input-size: " in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cli_cuda_without_gpu(synth_root: Path, lite_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ckpt", str(lite_ckpt), "--data", str(synth_root), "--device", "cuda"]) == 2
    assert "--device cpu" in capsys.readouterr().err
