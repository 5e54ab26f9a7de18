"""fornet.export.tensorrt.onnx_summary: what the engine build reads from an ONNX file (no TensorRT)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fornet.export.tensorrt.onnx_summary import OnnxInputError, inspect_onnx
from tests.helpers.onnx_graphs import save_model


def test_plain_fp32_graph(tmp_path: Path) -> None:
    path = save_model(tmp_path / "fornet.onnx")
    summary = inspect_onnx(path)
    assert summary.gate_nodes == 0 and not summary.needs_plugin
    assert summary.graph_precision == "fp32"
    assert [(i.name, i.shape, i.dtype) for i in summary.inputs] == [("image", (None, 3, 8, 16), "float")]
    assert summary.outputs == ("out",)
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_gate_node_means_plugin(tmp_path: Path) -> None:
    summary = inspect_onnx(save_model(tmp_path / "fornet.onnx", gate=True, batch=2))
    assert summary.gate_nodes == 1 and summary.needs_plugin and not summary.gate_function
    assert inspect_onnx(save_model(tmp_path / "f.onnx", gate=True, function=True)).gate_function
    assert summary.inputs[0].shape == (2, 3, 8, 16)
    assert summary.outputs == ("out", "masks")


@pytest.mark.parametrize("kind", ["fp16", "int8"])
def test_precision_comes_from_the_graph(tmp_path: Path, kind: str) -> None:
    assert inspect_onnx(save_model(tmp_path / f"m_{kind}.onnx", kind=kind)).graph_precision == kind


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(OnnxInputError, match=r"not found.*fornet-export"):
        inspect_onnx(tmp_path / "nope.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx file\xff" * 10)
    with pytest.raises(OnnxInputError, match=r"not a readable ONNX model"):
        inspect_onnx(bad)
