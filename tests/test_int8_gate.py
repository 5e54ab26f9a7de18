"""The INT8 accuracy gate, per-layer sensitivity and the greedy float fallback."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from fornet.calibration.cityscapes import CityscapesDataset
from fornet.export.int8.accuracy_gate import AccuracyGateError, GateReport, evaluate_int8
from fornet.export.int8.qdq_graph import float_node_names, quantize_graph
from fornet.export.int8.sensitivity import LayerSensitivity, greedy_fallback, measure_sensitivity
from tests.helpers.int8 import KS, export_fp32, gate_report, lite_checkpoint, minmax_ranges, model_input


def test_gate_passes_within_the_limit_and_fails_beyond() -> None:
    exact = gate_report(0)
    assert exact.drop == 0.0 and exact.passed and exact.parity.agreement == 1.0
    small = gate_report(1, max_drop=5.0)
    assert 0 < small.drop <= 5.0 and small.passed
    large = gate_report(8)
    assert large.drop > 1.0 and not large.passed
    assert "FAIL" in large.summary() and "road" in large.summary()
    record = large.to_record(data="DATA")
    assert record.passed is False and record.data == "DATA" and record.numerics is None
    road_delta = record.iou["road"].delta
    assert road_delta is not None and road_delta < 0 and record.iou["car"].delta is None


def test_gate_fails_when_k_is_not_exact() -> None:
    report = gate_report(0, cells=[[3, 6, 10, 13], [3, 6, 11, 13]])
    assert report.drop == 0.0 and not report.k_exact and not report.passed


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory, synth_root: Path):
    folder = tmp_path_factory.mktemp("int8-gate")
    fp32 = export_fp32(lite_checkpoint(folder), folder / "export").onnx_path
    ranges = minmax_ranges(fp32, synth_root)
    keep = float_node_names(onnx.load(fp32))
    int8 = folder / "fornet_int8.onnx"
    onnx.save(quantize_graph(fp32, ranges, keep), int8)
    return fp32, ranges, keep, int8


def test_evaluate_identical_files_is_lossless(lite, synth_root) -> None:
    fp32, *_ = lite
    report = evaluate_int8(fp32, fp32, CityscapesDataset(synth_root, "val"), model_input(), batch=1, ks=KS,
                           progress=False)
    assert report.images == 4 and report.drop == 0.0 and report.parity.agreement == 1.0
    assert report.mask_agreement == 1.0 and report.k_exact and report.passed


def test_evaluate_int8_scores_both_files(lite, synth_root) -> None:
    fp32, _, _, int8 = lite
    report = evaluate_int8(fp32, int8, CityscapesDataset(synth_root, "val"), model_input(), batch=1, ks=KS,
                           limit=2, progress=False)
    assert report.images == 2 and report.selected_cells == [list(KS)]
    assert 0.8 < report.parity.agreement < 1.0 and report.parity.boundary_pixels > 0
    assert report.parity.a.total_pixels == report.parity.b.total_pixels > 0


def test_evaluate_needs_images(lite, synth_root) -> None:
    fp32, *_ = lite
    with pytest.raises(AccuracyGateError, match="no images to score"):
        evaluate_int8(fp32, fp32, CityscapesDataset(synth_root, "val"), model_input(), batch=1, ks=KS, limit=0,
                      progress=False)


def test_sensitivity_ranks_measured_disagreement(lite, synth_root) -> None:
    fp32, ranges, keep, _ = lite
    feeds = [model_input().batch([CityscapesDataset(synth_root, "train")[0].image])]
    layers = ["/model/stem/stem.0/Conv", "/model/classifier/Conv", "/model/layer4/layer4.1/conv2/Conv"]
    ranking = measure_sensitivity(fp32, ranges, layers, keep, feeds, progress=False)
    assert sorted(r.node for r in ranking) == sorted(layers)
    scores = [r.disagreement for r in ranking]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] < 0.5


def test_greedy_fallback_stops_at_the_first_pass() -> None:
    ranking = [LayerSensitivity(name, 0.1 / (i + 1)) for i, name in enumerate("abcd")]
    tried: list[list[str]] = []

    def attempt(layers: list[str]) -> GateReport:
        tried.append(layers)
        return gate_report(8 - 4 * len(layers))

    fallback, report, steps = greedy_fallback(ranking, attempt, max_layers=3)
    assert fallback == ["a", "b"] and tried == [["a"], ["a", "b"]]
    assert report is not None and report.passed and [s.passed for s in steps] == [False, True]
    limited, last, steps = greedy_fallback(ranking, lambda layers: gate_report(8), max_layers=2)
    assert limited == ["a", "b"] and last is not None and not last.passed and len(steps) == 2
