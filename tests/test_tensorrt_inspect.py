"""describe_engine: the text part (no TensorRT), its errors, and the flow against the fake TensorRT."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from fornet.export.tensorrt.inspect import EngineLoadError, IOTensor, describe_engine, format_engine_description
from fornet.runtime.cuda.device import CudaDevice
from fornet.runtime.tensorrt.env import TensorRTUnavailableError
from fornet.runtime.tensorrt.plugins import PluginLibraryError
from tests.helpers.engine_metadata import PLUGIN, engine_metadata
from tests.helpers.fake_tensorrt import FakeIOTensor, TrtWorld, install_fake_tensorrt

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


#: The plan describe_engine reads: static batch 1, float input and logits.
PLAN = (FakeIOTensor("image", "INPUT", (1, 3, 8, 16), "FLOAT"),
        FakeIOTensor("logits", "OUTPUT", (1, 19, 8, 16), "FLOAT"))


def install_tensorrt(monkeypatch: pytest.MonkeyPatch, *, deserialize_ok: bool = True) -> None:
    install_fake_tensorrt(monkeypatch, TrtWorld(
        version="11.1.0.106", plan=PLAN, engine_information=DETAILED, deserialize_ok=deserialize_ok,
        log_on_failure="Serialization assertion magicTagRead == kMAGIC_TAG failed"))
    monkeypatch.setattr("fornet.export.tensorrt.inspect.cuda_device", lambda: CudaDevice("H100", (9, 0)))
    monkeypatch.setattr("fornet.runtime.tensorrt.plugins.find_plugin_library", fail_to_find)


def fail_to_find(path: Any = None) -> Path:
    raise PluginLibraryError("TensorRT plugin library libfornet_plugins.so not found; searched ...")


def test_describes_a_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_tensorrt(monkeypatch)
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    text = describe_engine(plan)
    assert text.startswith(f"plan: {plan} (TensorRT 11.1.0.106)")
    assert "input  image: FLOAT [1, 3, 8, 16] [Row major linear FP32]" in text and "TopKGate_0" in text


def test_undeserialisable_plan_quotes_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_tensorrt(monkeypatch, deserialize_ok=False)
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(EngineLoadError, match=r"(?s)cannot deserialise.*magicTagRead.*rebuild with fornet-build"):
        describe_engine(plan)


def test_plan_recorded_with_plugin_needs_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_tensorrt(monkeypatch)
    plan = tmp_path / "fornet.plan"
    plan.write_bytes(b"plan")
    engine_metadata(plugin=PLUGIN).save(tmp_path / "fornet.plan.json")
    with pytest.raises(PluginLibraryError, match=r"libfornet_plugins.so not found"):
        describe_engine(plan)
