"""PyTorch vs ONNX Runtime parity of exported files, computed independently of the exporter's verifier.

The lite parity tests sit in test_export_graph.py beside the lite export fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fornet.export import ExportOptions, IOFormat, export_onnx
from fornet.model import load_model
from tests.helpers.model_utils import realistic_model
from tests.helpers.parity import check_parity, images_of, torch_logits


@pytest.fixture(scope="module")
def r18_bare_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint in the bare reference layout: torch.save(model.state_dict())."""
    path = tmp_path_factory.mktemp("bare") / "reference_r18.pth"
    torch.save(realistic_model("r18", seed=3).state_dict(), path)
    return path


def test_bare_state_dict_r18_fp32_and_fp16(r18_bare_ckpt, tmp_path, synth_root):
    result = export_onnx(r18_bare_ckpt, tmp_path, ExportOptions(input_size=(128, 256), fp16=True, gate="plugin",
                                                               verify_data=synth_root, progress=False))
    images = images_of(synth_root, (128, 256))
    check_parity(r18_bare_ckpt, result.onnx_path, images, max_diff=1e-3, min_agreement=0.9999)
    check_parity(r18_bare_ckpt, result.fp16_path, images, max_diff=None, min_agreement=0.99)
    assert result.reports["fp32"].passed and result.reports["fp16"].passed
    assert result.reports["fp32"].max_abs_logit_diff <= 1e-3


def test_r18_second_size_native_gate(r18_bare_ckpt, tmp_path, synth_root):
    result = export_onnx(r18_bare_ckpt, tmp_path, ExportOptions(input_size=(96, 160), gate="native", fp16=True,
                                                               verify_images=1, progress=False))
    images = images_of(synth_root, (96, 160))
    check_parity(r18_bare_ckpt, result.onnx_path, images, max_diff=1e-3, min_agreement=0.9999)
    check_parity(r18_bare_ckpt, result.fp16_path, images, max_diff=None, min_agreement=0.99)


def test_raw_bgr_input_and_uint8_labels(tmp_path, synth_root):
    ckpt = tmp_path / "lite.pth"
    torch.save(realistic_model("lite", seed=5).state_dict(), ckpt)
    io = IOFormat(input="raw", channel_order="BGR", output="labels")
    result = export_onnx(ckpt, tmp_path / "out", ExportOptions(input_size=(128, 256), io=io, gate="plugin",
                                                                    verify=False))
    images = images_of(synth_root, (128, 256), count=4)
    ref_logits, _ = torch_logits(load_model(ckpt), images)
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)" and session.get_outputs()[0].name == "labels"
    labels = np.concatenate([session.run(None, {"image": im[None, :, :, ::-1].copy()})[0] for im in images])
    assert labels.dtype == np.uint8 and labels.shape == (len(images), 128, 256)
    assert float((labels == ref_logits.argmax(1)).mean()) >= 0.999
    assert not result.reports
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["input"]["layout"] == "NHWC" and sidecar["input"]["dtype"] == "uint8"
    assert sidecar["input"]["normalization_in_graph"] and sidecar["input"]["channel_order"] == "BGR"
    assert sidecar["outputs"][0]["name"] == "labels" and sidecar["outputs"][0]["dtype"] == "uint8"
    assert sidecar["verification"] is None


@pytest.mark.slow
def test_r101_small_size_fp32_and_fp16(tmp_path, synth_root):
    ckpt = tmp_path / "r101.pth"
    torch.save(realistic_model("r101", seed=7).state_dict(), ckpt)
    result = export_onnx(ckpt, tmp_path / "out", ExportOptions(input_size=(64, 128), fp16=True, gate="plugin",
                                                              verify_images=1, progress=False))
    images = images_of(synth_root, (64, 128))
    check_parity(ckpt, result.onnx_path, images, max_diff=1e-3, min_agreement=0.9999)
    check_parity(ckpt, result.fp16_path, images, max_diff=None, min_agreement=0.99)
