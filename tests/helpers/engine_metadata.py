"""A complete plan sidecar (``EngineMetadata``) for tests that need one without building a plan."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fornet.records import FileDigest
from fornet.runtime.tensorrt.plan_metadata import BuildSettings, EngineMetadata, GpuInfo, PluginInfo

ORIN = EngineMetadata(
    fornet_deploy_version="0.1.0", plan=FileDigest("fornet.plan", "0" * 64), tensorrt_version="10.3.0.26",
    gpu=GpuInfo("Orin", "8.7"), built_precision="fp16", strongly_typed=True,
    source_onnx=FileDigest("fornet.onnx", "1" * 64), inputs=(), outputs=(), build_options=BuildSettings(), plugin=None,
    calibration_cache=None, fornet_build_command="fornet-build --onnx fornet.onnx",
)
PLUGIN = PluginInfo("libfornet_plugins.so", "0" * 64, "TopKGate/1/fornet")


def engine_metadata(**changes: Any) -> EngineMetadata:
    """:data:`ORIN` with ``changes`` applied."""
    return replace(ORIN, **changes)
