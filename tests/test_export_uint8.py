"""No exported graph, in any option combination, holds a UINT8 tensor TensorRT's ONNX parser rejects.

The parser refuses UINT8 node outputs that are not graph outputs ("TensorRT does not support
UINT8 types for intermediate tensors!"): ``--input raw`` must cast the uint8 frame first.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from fornet.export import ExportOptions, IOFormat, export_onnx
from fornet.export.tensorrt.graph_rules import uint8_violations
from fornet.model import save_checkpoint
from tests.helpers.model_utils import realistic_model

SIZE = (64, 128)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("uint8") / "lite.pth"
    save_checkpoint(path, realistic_model("lite", seed=5), "lite")
    return path


def _graph(first: str) -> onnx.ModelProto:
    """uint8 NHWC input -> (Transpose, Cast) in either order -> float NCHW output."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 4, 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])
    transpose_in, cast_in = ("image", "t") if first == "Transpose" else ("c", "image")
    nodes = [helper.make_node("Transpose", [transpose_in], ["t" if first == "Transpose" else "out"],
                              perm=[0, 3, 1, 2]),
             helper.make_node("Cast", [cast_in], ["out" if first == "Transpose" else "c"], to=TensorProto.FLOAT)]
    if first == "Cast":
        nodes.reverse()
    return helper.make_model(helper.make_graph(nodes, "g", [image], [out]))


def test_checker_flags_a_uint8_transpose_before_the_cast() -> None:
    problems = uint8_violations(_graph("Transpose"))
    assert any("intermediate tensor 't' is UINT8" in p for p in problems)
    assert any("Transpose node" in p and "straight into a Cast" in p for p in problems)
    assert uint8_violations(_graph("Cast")) == []


def _export(checkpoint: Path, out: Path, io: IOFormat, gate: str, io_fp16: bool) -> list[Path]:
    result = export_onnx(checkpoint, out, ExportOptions(
        input_size=SIZE, dynamic_batch=True, batch=2, gate=gate, fp16=True, io_fp16=io_fp16, io=io,
        verify=False, progress=False))
    assert result.fp16_path is not None
    return [result.onnx_path, result.fp16_path]


def test_raw_input_labels_export_casts_first(checkpoint: Path, tmp_path: Path) -> None:
    io = IOFormat(input="raw", channel_order="BGR", output="labels", label_dtype="uint8")
    for path in _export(checkpoint, tmp_path, io, "plugin", io_fp16=True):
        model = onnx.load(str(path))
        assert uint8_violations(model) == [], path.name
        readers = [node.op_type for node in model.graph.node if "image" in node.input]
        assert readers == ["Cast"], path.name


IO_FORMATS = [
    *(IOFormat(input="normalized", output=output, label_dtype=dtype)
      for output, dtype in (("logits", "uint8"), ("labels", "uint8"), ("labels", "int32"))),
    *(IOFormat(input="raw", channel_order=order, output=output, label_dtype=dtype)
      for order, (output, dtype) in itertools.product(("RGB", "BGR"),
                                                      (("logits", "uint8"), ("labels", "uint8"),
                                                       ("labels", "int32")))),
]


@pytest.mark.slow
@pytest.mark.parametrize("gate", ["plugin", "native"])
def test_no_export_combination_has_uint8_intermediates(checkpoint: Path, tmp_path: Path, gate: str) -> None:
    for index, io in enumerate(IO_FORMATS):
        for path in _export(checkpoint, tmp_path / str(index), io, gate, io_fp16=index % 2 == 1):
            assert uint8_violations(onnx.load(str(path))) == [], f"{path.name} with {io}, gate {gate}"


def test_fornet_build_refuses_a_uint8_intermediate_before_touching_tensorrt(tmp_path: Path) -> None:
    from fornet.export.tensorrt.build import OnnxParseError, build_engine

    path = tmp_path / "old_raw.onnx"
    onnx.save(_graph("Transpose"), path)
    with pytest.raises(OnnxParseError, match=r"(?s)intermediate tensor 't' is UINT8.*re-export"):
        build_engine(path)
