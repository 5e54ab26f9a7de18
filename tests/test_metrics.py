"""fornet.calibration.metrics against brute-force counting and the official Cityscapes evaluator."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from fornet.calibration.labels import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    TRAIN_TO_LABEL,
    label_ids_to_train_ids,
)
from fornet.calibration.metrics import (
    ConfusionMatrix,
    MetricsError,
    ParityReport,
    boundary_band,
    compare_predictions,
    format_iou_table,
    pixel_agreement,
    save_label_id_png,
)
from fornet.errors import FornetError


def brute_force_iou(preds: list[np.ndarray], targets: list[np.ndarray], num_classes: int,
                    ignore: int = 255) -> np.ndarray:
    """Per-class |P ∩ G| / |P ∪ G| over the valid pixels of all images, counted with Python sets."""
    iou = np.full(num_classes, np.nan)
    for c in range(num_classes):
        inter = union = 0
        for img, (p, t) in enumerate(zip(preds, targets, strict=True)):
            valid = {(img, i) for i, v in enumerate(t.ravel().tolist()) if v != ignore}
            pred_c = {(img, i) for i, v in enumerate(p.ravel().tolist()) if v == c} & valid
            gt_c = {(img, i) for i, v in enumerate(t.ravel().tolist()) if v == c}
            inter += len(pred_c & gt_c)
            union += len(pred_c | gt_c)
        if union:
            iou[c] = inter / union
    return iou


def random_pair(rng: np.random.Generator, shape: tuple[int, ...], num_classes: int = 19):
    target = rng.integers(0, num_classes, shape).astype(np.uint8)
    target[rng.random(shape) < 0.2] = 255
    pred = np.where(rng.random(shape) < 0.6, target, rng.integers(0, num_classes, shape)).astype(np.uint8)
    pred[rng.random(shape) < 0.05] = 255            # invalid predictions: misses
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_matches_brute_force_set_counting(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 6
    pairs = [random_pair(rng, (13, 17), num_classes) for _ in range(3)]
    # make class 5 absent from the ground truth but predicted, class 4 absent from both
    for pred, target in pairs:
        target[np.isin(target, (4, 5))] = 0
        pred[pred == 4] = 1
    cm = ConfusionMatrix(num_classes)
    for pred, target in pairs:
        cm.update(pred, target)
    expected = brute_force_iou([p for p, _ in pairs], [t for _, t in pairs], num_classes)
    np.testing.assert_allclose(cm.iou(), expected, rtol=0, atol=1e-12)
    assert math.isnan(cm.iou()[4]) and cm.iou()[5] == 0.0
    assert cm.miou() == pytest.approx(float(np.nanmean(expected)), abs=1e-12)
    valid = [t != 255 for _, t in pairs]
    correct = sum(int(((p == t) & v).sum()) for (p, t), v in zip(pairs, valid, strict=True))
    assert cm.pixel_accuracy() == pytest.approx(correct / sum(int(v.sum()) for v in valid))
    assert cm.total_pixels == sum(int(v.sum()) for v in valid)


def test_matrix_counts_and_misses() -> None:
    target = np.array([[0, 0, 1, 255]], dtype=np.uint8)
    pred = np.array([[0, 255, 0, 1]], dtype=np.uint8)
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    assert cm.matrix.dtype == np.int64
    np.testing.assert_array_equal(cm.invalid_predictions, [1, 0, 0])
    # road: tp 1, fn 1 (the 255 prediction), fp 1 -> 1/3; class 1: 0; class 2 absent -> NaN
    np.testing.assert_allclose(cm.iou(), [1 / 3, 0.0, np.nan])
    assert cm.miou() == pytest.approx((1 / 3 + 0.0) / 2)
    assert cm.pixel_accuracy() == pytest.approx(1 / 3)


def test_accumulated_split_is_not_mean_of_per_image_ious() -> None:
    a_t, a_p = np.zeros((1, 10), np.uint8), np.zeros((1, 10), np.uint8)
    b_t = np.array([[0, 1, 1, 1, 1, 1, 1, 1, 1, 1]], np.uint8)
    b_p = np.ones((1, 10), np.uint8)
    whole = ConfusionMatrix(2)
    whole.update(np.stack([a_p, b_p]), np.stack([a_t, b_t]))
    per_image = []
    for p, t in ((a_p, a_t), (b_p, b_t)):
        cm = ConfusionMatrix(2)
        cm.update(p, t)
        per_image.append(cm.miou())
    # class 0: tp 10, fn 1 -> 10/11; class 1: tp 9, fp 1 -> 9/10
    assert whole.miou() == pytest.approx((10 / 11 + 9 / 10) / 2)
    assert whole.miou() != pytest.approx(float(np.mean(per_image)))


def test_merge_equals_single_accumulation() -> None:
    rng = np.random.default_rng(3)
    pairs = [random_pair(rng, (20, 30)) for _ in range(4)]
    single, first, second = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    for i, (p, t) in enumerate(pairs):
        single.update(p, t)
        (first if i < 2 else second).update(p, t)
    assert first.merge(second) is first
    np.testing.assert_array_equal(first.matrix, single.matrix)
    np.testing.assert_array_equal(first.invalid_predictions, single.invalid_predictions)
    with pytest.raises(MetricsError, match="same num_classes"):
        first.merge(ConfusionMatrix(num_classes=5))


def test_empty_matrix_is_nan_not_an_error() -> None:
    cm = ConfusionMatrix()
    cm.update(np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8))
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    assert np.isnan(cm.iou()).all()
    summary = cm.to_record(CLASS_NAMES)
    assert summary.miou is None and summary.iou["road"] is None
    assert "NaN" not in json.dumps(asdict(summary))   # JSON-ready: no NaN, no NumPy types


@pytest.mark.parametrize(("pred", "target", "match"), [
    (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), "integer array"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), "shapes differ"),
    (np.zeros((4,), np.uint8), np.zeros((4,), np.uint8), "HxW or NxHxW"),
    (np.zeros((1, 1, 4, 4), np.uint8), np.zeros((1, 1, 4, 4), np.uint8), "HxW or NxHxW"),
    (np.zeros((4, 4), np.uint8), np.full((4, 4), 26, np.uint8), "label_ids_to_train_ids"),
    (np.zeros((4, 4), np.int64), np.full((4, 4), -1, np.int64), "neither a class"),
])
def test_update_rejects_bad_inputs(pred: np.ndarray, target: np.ndarray, match: str) -> None:
    cm = ConfusionMatrix()
    with pytest.raises(MetricsError, match=match) as info:
        cm.update(pred, target)
    assert isinstance(info.value, FornetError)
    assert cm.total_pixels == 0


def test_bad_constructor_arguments() -> None:
    with pytest.raises(MetricsError, match="outside"):
        ConfusionMatrix(num_classes=19, ignore_index=3)
    with pytest.raises(MetricsError, match="positive"):
        ConfusionMatrix(num_classes=0)


def test_to_record_names_classes() -> None:
    cm = ConfusionMatrix()
    target = np.arange(19, dtype=np.uint8).reshape(1, 19)
    cm.update(target, target)
    d = cm.to_record(CLASS_NAMES)
    assert d.miou == 1.0 and d.iou["bicycle"] == 1.0 and d.pixels == 19
    assert np.array_equal(d.confusion_matrix, np.eye(19, dtype=int)) and isinstance(d.confusion_matrix[0][0], int)
    with pytest.raises(MetricsError, match="one name per class"):
        cm.to_record(CLASS_NAMES[:5])


def brute_force_band(label: np.ndarray, width: int, ignore: int = 255) -> np.ndarray:
    h, w = label.shape
    band = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            v = label[y, x]
            if v == ignore:
                continue
            window = label[max(0, y - width):y + width + 1, max(0, x - width):x + width + 1]
            band[y, x] = bool(((window != v) & (window != ignore)).any())
    return band


@pytest.mark.parametrize(("seed", "width"), [(0, 1), (1, 3), (2, 5)])
def test_boundary_band_matches_brute_force(seed: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    # blocky labels with ignore areas so that the band is neither empty nor everything
    label = np.kron(rng.integers(0, 4, (4, 5)), np.ones((6, 5), int)).astype(np.uint8)
    label[rng.random(label.shape) < 0.05] = 255
    np.testing.assert_array_equal(boundary_band(label, width), brute_force_band(label, width))
    batch = np.stack([label, label[::-1]])
    np.testing.assert_array_equal(boundary_band(batch, width)[1], brute_force_band(label[::-1], width))


def test_boundary_band_straight_edge() -> None:
    label = np.zeros((6, 12), np.uint8)
    label[:, 6:] = 2
    label[0, :] = 255
    band = boundary_band(label, width=3)
    assert not band[0].any()                       # ignored row
    np.testing.assert_array_equal(np.flatnonzero(band[3]), [3, 4, 5, 6, 7, 8])
    assert not boundary_band(label, width=0).any()
    assert not boundary_band(np.full((5, 5), 7, np.uint8)).any()
    with pytest.raises(MetricsError, match=">= 0"):
        boundary_band(label, width=-1)


def test_pixel_agreement() -> None:
    a = np.array([[1, 2, 3, 4]])
    b = np.array([[1, 0, 3, 0]])
    assert pixel_agreement(a, b) == 0.5
    assert pixel_agreement(a, b, np.array([[True, True, False, False]])) == 0.5
    assert pixel_agreement(a, b, np.array([[True, False, True, False]])) == 1.0
    assert math.isnan(pixel_agreement(a, b, np.zeros((1, 4), bool)))
    with pytest.raises(MetricsError, match="boolean"):
        pixel_agreement(a, b, np.ones((1, 4), np.uint8))
    with pytest.raises(MetricsError, match="shapes differ"):
        pixel_agreement(a, b[:, :3])


def test_parity_report_against_hand_counts() -> None:
    target = np.zeros((8, 8), np.uint8)
    target[:, 4:] = 1                              # band (width 1): columns 3 and 4
    pred_a = target.copy()
    pred_b = target.copy()
    pred_b[0, 3] = 1                               # disagreement inside the band
    pred_b[0, 0] = 1                               # disagreement outside the band
    report = compare_predictions(pred_a, pred_b, target, boundary_width=1)
    assert report.pixels == 64 and report.agreement == pytest.approx(62 / 64)
    assert report.boundary_pixels == 16 and report.boundary_agreement == pytest.approx(15 / 16)
    # b: class 0 tp 30, fn 2; class 1 tp 32, fp 2 -> 30/32 and 32/34
    iou_b = [30 / 32, 32 / 34]
    np.testing.assert_allclose(report.b.iou()[:2], iou_b)
    assert report.a.miou() == 1.0
    assert report.miou_delta == pytest.approx(np.mean(iou_b) - 1.0)
    np.testing.assert_allclose(report.iou_delta[:2], np.array(iou_b) - 1.0)
    assert np.isnan(report.iou_delta[2:]).all()
    report.update(pred_a, pred_a, target)          # accumulates
    assert report.agreement == pytest.approx(126 / 128)
    d = report.to_record(CLASS_NAMES, names=("pytorch", "onnx"))
    onnx_road = report.b.to_record(CLASS_NAMES).iou["road"]
    assert report.a.to_record(CLASS_NAMES).miou == 1.0 and onnx_road is not None
    assert d.iou_delta["road"] == pytest.approx(onnx_road - 1) and d.text == report.summary(("pytorch", "onnx"))
    assert "NaN" not in json.dumps(asdict(d))
    assert "boundary-band agreement (width 1): 96.875%" in report.summary(("pytorch", "onnx"))


def test_parity_report_rejects_mismatched_shapes() -> None:
    report = ParityReport()
    with pytest.raises(MetricsError, match="shapes differ"):
        report.update(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), np.zeros((4, 4), np.uint8))


def test_save_label_id_png_writes_label_ids(tmp_path: Path) -> None:
    train_ids = np.array([[0, 1, 18, 255], [13, 19, 254, 2]], dtype=np.int64)
    path = tmp_path / "sub" / "x_pred_labelIds.png"
    save_label_id_png(path, train_ids)
    read = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint8 and read.ndim == 2
    np.testing.assert_array_equal(read, [[7, 8, 33, 0], [26, 0, 0, 11]])
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temporary left behind
    with pytest.raises(MetricsError, match="HxW integer"):
        save_label_id_png(tmp_path / "bad.png", np.zeros((2, 2, 3), np.uint8))


def test_format_iou_table() -> None:
    iou = np.full(NUM_CLASSES, np.nan)
    iou[0], iou[18] = 0.97123, 0.5
    table = format_iou_table(iou, CLASS_NAMES)
    lines = table.splitlines()
    assert len(lines) == 2 + NUM_CLASSES
    assert lines[2].split() == ["road", "97.12"]
    assert lines[-1].split() == ["bicycle", "50.00"]
    assert lines[2 + 6].split() == ["traffic", "light", "n/a"]


# ---------------------------------------------------------------- the official evaluator


#: Ground truth of these labelIds is turned into labelId 0 (ignored) in the evaluated copy: rider
#: (trainId 12) is then absent from the truth but predicted (IoU 0, counted), train, motorcycle and
#: bicycle (16-18) absent from both (IoU NaN, not counted) although predicted on ignored pixels.
HIDDEN_LABEL_IDS = (25, 31, 32, 33)


def perturb(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An imperfect prediction: shifted truth, noise from classes 0..15, misses, 17 on ignored pixels."""
    pred = np.roll(label, 3, axis=1).copy()
    noise = rng.random(label.shape) < 0.15
    pred[noise] = rng.integers(0, 16, int(noise.sum()))
    pred[rng.random(label.shape) < 0.03] = IGNORE_INDEX     # written as labelId 0: a miss
    pred[label == IGNORE_INDEX] = 17                         # never a false positive
    return pred


def run_official_evaluator(monkeypatch: pytest.MonkeyPatch, root: Path, results: Path,
                           export: Path) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    monkeypatch.setenv("CITYSCAPES_DATASET", str(root))
    monkeypatch.setenv("CITYSCAPES_RESULTS", str(results))
    monkeypatch.setenv("CITYSCAPES_EXPORT_DIR", str(export))
    # The module reads those variables at import time; set the same on its args object.
    args = official.args
    monkeypatch.setattr(args, "cityscapesPath", str(root))
    monkeypatch.setattr(args, "groundTruthSearch", str(root / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png"))
    monkeypatch.setattr(args, "exportFile", str(export / "resultPixelLevelSemanticLabeling.json"))
    monkeypatch.setattr(args, "predictionPath", None)
    monkeypatch.setattr(args, "predictionWalk", None)
    monkeypatch.setattr(args, "evalInstLevelScore", False)   # iIoU is not compared
    monkeypatch.setattr(args, "quiet", True)
    monkeypatch.setattr(args, "colorized", False)
    gts = sorted(official.glob.glob(args.groundTruthSearch))
    assert gts, "the generated data set has no val ground truth"
    preds = [official.getPrediction(args, gt) for gt in gts]
    official.evaluateImgLists(preds, gts, args)
    return json.loads((export / "resultPixelLevelSemanticLabeling.json").read_text())


def test_miou_equals_official_cityscapes_evaluator(synth_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, results, export = tmp_path / "cityscapes", tmp_path / "results", tmp_path / "export"
    export.mkdir()
    rng = np.random.default_rng(0)
    cm = ConfusionMatrix()
    gt_files = sorted((synth_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    for gt_file in gt_files:
        label_ids = cv2.imread(str(gt_file), cv2.IMREAD_UNCHANGED)
        label_ids[np.isin(label_ids, HIDDEN_LABEL_IDS)] = 0
        copy = root / "gtFine" / "val" / gt_file.parent.name / gt_file.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(copy), label_ids)
        target = label_ids_to_train_ids(label_ids)
        pred = perturb(target, rng)
        cm.update(pred, target)
        save_label_id_png(results / gt_file.name.replace("gtFine_labelIds", "pred_labelIds"), pred)

    official = run_official_evaluator(monkeypatch, root, results, export)
    assert len(gt_files) >= 2 and 0.2 < cm.miou() < 0.95     # several images, imperfect predictions
    assert cm.miou() == pytest.approx(official["averageScoreClasses"], abs=1e-6)
    theirs = np.array([official["classScores"][name] for name in CLASS_NAMES], dtype=float)
    assert theirs[12] == 0.0 and np.isnan(theirs[16:]).all()   # the convention was exercised
    np.testing.assert_array_equal(np.isnan(cm.iou()), np.isnan(theirs))
    np.testing.assert_allclose(cm.iou(), theirs, rtol=0, atol=1e-9)
    # the official matrix is indexed by labelId; its evaluated block is our matrix
    theirs_matrix = np.array(official["confMatrix"], dtype=np.int64)[np.ix_(TRAIN_TO_LABEL, TRAIN_TO_LABEL)]
    np.testing.assert_array_equal(cm.matrix, theirs_matrix)


def test_majority_baseline_equals_scoring_a_constant_prediction() -> None:
    rng = np.random.default_rng(4)
    target = rng.choice([0, 0, 0, 2, 5, 255], size=(3, 20, 30)).astype(np.uint8)
    scored = ConfusionMatrix()
    scored.update(rng.integers(0, 19, size=target.shape), target)
    constant = ConfusionMatrix()
    constant.update(np.zeros_like(target), target)  # class 0 is the most frequent
    assert scored.majority_baseline_miou() == pytest.approx(constant.miou())
    assert np.isnan(ConfusionMatrix().majority_baseline_miou())
