"""runtime.backend / runtime.onnxrt: the Polygraphy-style backend interface on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fornet.errors import FornetError
from fornet.runtime.backend import Backend, BackendError, BackendInputError, TensorSpec
from fornet.runtime.onnxrt import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def affine_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = 2 * x + 1 with x: ? x 3 float32 (dynamic batch), plus an int64 output of x's shape."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"]),
         helper.make_node("Shape", ["x"], ["shape"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        initializer=[helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
                     helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    path = tmp_path_factory.mktemp("backend") / "affine.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_infer_specs_and_timing(affine_onnx):
    backend = OnnxRuntimeBackend(affine_onnx, threads=1)
    assert isinstance(backend, Backend)
    with backend as active:
        assert active.input_specs == {"x": TensorSpec((None, 3), np.dtype(np.float32))}
        assert active.output_specs["shape"] == TensorSpec((2,), np.dtype(np.int64))
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        out = active.infer({"x": x})
        np.testing.assert_array_equal(out["y"], 2 * x + 1)
        np.testing.assert_array_equal(out["shape"], [2, 3])
        assert active.last_inference_time is not None and active.last_inference_time > 0
        assert list(active.infer({"x": x[:1]})["shape"]) == [1, 3]  # dynamic batch accepted
    assert not backend.is_active


@pytest.mark.parametrize(("feed", "pattern"), [
    ({}, r"missing \['x'\]"),
    ({"x": np.zeros((1, 3), np.float32), "z": np.zeros(1)}, r"unknown \['z'\]"),
    ({"x": np.zeros((1, 4), np.float32)}, r"shape 1x4 .* takes \?x3 float32"),
    ({"x": np.zeros((3,), np.float32)}, r"shape 3 "),
    ({"x": np.zeros((1, 3), np.float64)}, r"dtype float64 .* \.astype\(np\.float32\)"),
    ({"x": [[0.0, 0.0, 0.0]]}, r"is a list; pass a numpy array"),
])
def test_bad_feeds_raise_typed_errors(affine_onnx, feed, pattern):
    with OnnxRuntimeBackend(affine_onnx) as backend, pytest.raises(BackendInputError, match=pattern):
        backend.infer(feed)
    assert issubclass(BackendInputError, FornetError)


def test_use_outside_with_block_and_double_activation(affine_onnx):
    backend = OnnxRuntimeBackend(affine_onnx)
    with pytest.raises(BackendError, match="not active"):
        backend.infer({"x": np.zeros((1, 3), np.float32)})
    with pytest.raises(BackendError, match="not active"):
        _ = backend.input_specs
    with backend, pytest.raises(BackendError, match="already active"):
        backend.activate()


def test_missing_corrupt_and_bad_options(tmp_path, affine_onnx):
    with pytest.raises(BackendError, match="not found"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx").activate()
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(affine_onnx.read_bytes()[:40])
    with pytest.raises(BackendError, match="cannot load"):
        OnnxRuntimeBackend(corrupt).activate()
    with pytest.raises(BackendError, match="not in this onnxruntime build"):
        OnnxRuntimeBackend(affine_onnx, providers=["NoSuchExecutionProvider"]).activate()
    with pytest.raises(BackendError, match="threads must be at least 1"):
        OnnxRuntimeBackend(affine_onnx, threads=0)
