"""describe_engine: the text part (no TensorRT), its errors, and the flow against a fake TensorRT."""

from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from fornet.export.tensorrt.inspect import EngineLoadError, IOTensor, describe_engine, format_engine_description
from fornet.runtime.tensorrt.env import CudaDevice, TensorRTUnavailableError
from fornet.runtime.tensorrt.plugins import PluginLibraryError
from tests.engine_metadata import PLUGIN, engine_metadata

DETAILED = {
    "Layers": [
        {"Name": "/backbone/conv1/Conv", "LayerType": "CaskConvolution",
         "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 is padded"}]},
        {"Name": "TopKGate_0", "LayerType": "PluginV3",
         "Outputs": [{"Name": f"gated_{i}", "Format/Datatype": "Row major linear FP16 format"} for i in range(4)]
         + [{"Name": "masks", "Format/Datatype": "Row major linear FP32"}]},
    ],
    "Bindings": ["image", "logits"],
}


def test_format_detailed_information() -> None:
    tensors = [IOTensor("image", "INPUT", (1, 3, 1024, 2048), "FLOAT", "Row major linear FP32"),
               IOTensor("logits", "OUTPUT", (1, 19, 1024, 2048), "FLOAT", "Row major linear FP32")]
    text = format_engine_description(tensors, DETAILED)
    assert "input  image: FLOAT [1, 3, 1024, 2048]" in text
    assert "output logits: FLOAT [1, 19, 1024, 2048]" in text
    assert "layers: 2" in text and "PluginV3" in text and "TopKGate_0" in text
    assert "layer outputs by precision: FP16 5, FP32 1" in text


def test_format_names_only_information() -> None:
    text = format_engine_description([], {"Layers": ["conv1", "relu1"]})
    assert "layers: 2" in text and "  conv1" in text and "by precision" not in text


def test_missing_plan(tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError, match=r"not found; build it with fornet-build"):
        describe_engine(tmp_path / "none.plan")


def test_needs_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError):
        describe_engine(plan)


class FakeEngine:
    num_io_tensors = 2
    _tensors = (("image", "INPUT", [1, 3, 8, 16]), ("logits", "OUTPUT", [1, 19, 8, 16]))

    def get_tensor_name(self, index: int) -> str:
        return self._tensors[index][0]

    def _find(self, name: str) -> tuple[str, str, list[int]]:
        return next(t for t in self._tensors if t[0] == name)

    def get_tensor_mode(self, name: str) -> Any:
        return types.SimpleNamespace(name=self._find(name)[1])

    def get_tensor_shape(self, name: str) -> list[int]:
        return self._find(name)[2]

    def get_tensor_dtype(self, name: str) -> Any:
        return types.SimpleNamespace(name="FLOAT")

    def get_tensor_format_desc(self, name: str) -> str:
        return "Row major linear FP32"

    def create_engine_inspector(self) -> Any:
        return types.SimpleNamespace(get_engine_information=lambda fmt: json.dumps(DETAILED))


def install_fake_tensorrt(monkeypatch: pytest.MonkeyPatch, engine: FakeEngine | None) -> None:
    trt: Any = types.ModuleType("tensorrt")
    trt.__version__ = "11.1.0.106"
    trt.Builder = object

    class ILogger:
        Severity = enum.IntEnum("Severity", {"ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

        def __init__(self) -> None:
            pass

    class Runtime:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
            self.logger.log(ILogger.Severity.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed")
            return engine

    trt.ILogger = ILogger
    trt.Runtime = Runtime
    trt.LayerInformationFormat = enum.Enum("LayerInformationFormat", ["ONELINE", "JSON"])
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("fornet.runtime.tensorrt.env.cuda_device", lambda: CudaDevice("H100", (9, 0)))
    monkeypatch.setattr("fornet.runtime.tensorrt.plugins.find_plugin_library", fail_to_find)


def fail_to_find(path: Any = None) -> Path:
    raise PluginLibraryError("TensorRT plugin library libfornet_plugins.so not found; searched ...")


def test_describes_a_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_tensorrt(monkeypatch, FakeEngine())
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    text = describe_engine(plan)
    assert text.startswith(f"plan: {plan} (TensorRT 11.1.0.106)")
    assert "input  image: FLOAT [1, 3, 8, 16] [Row major linear FP32]" in text and "TopKGate_0" in text


def test_undeserialisable_plan_quotes_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_tensorrt(monkeypatch, None)
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(EngineLoadError, match=r"(?s)cannot deserialise.*magicTagRead.*rebuild with fornet-build"):
        describe_engine(plan)


def test_plan_recorded_with_plugin_needs_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_tensorrt(monkeypatch, FakeEngine())
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    engine_metadata(plugin=PLUGIN).save(tmp_path / "fornet.plan.json")
    with pytest.raises(PluginLibraryError, match=r"libfornet_plugins.so not found"):
        describe_engine(plan)
