"""``fornet_int8_tensorrt.onnx``: INT8 Q/DQ laid out for TensorRT, on an FP16 base.

The ONNX Runtime file (:mod:`fornet.export.int8.qdq_graph`) is laid out for ONNX Runtime's CPU
kernels: Q/DQ on every convolution's input and output, residual ``Add``s reading FP32, the rest
FP32. Built strongly typed by TensorRT that layout leaves every unquantized layer in FP32 and
keeps each residual convolution's output in float. This file follows TensorRT's placement rules
instead (checked by :func:`fornet.export.int8.placement.placement_issues`):

* INT8 (symmetric, per-channel weights, per-tensor activations) on the inputs of every
  convolution and on the residual input of every skip-connection ``Add``; no Q/DQ on the outputs
  of weighted layers, so Conv-BN-ReLU-Add fuses into one INT8 kernel;
* everything not quantized runs in FP16; the selector head, its scores, the Top-K gate and the
  ``masks`` output stay FP32 (so every mask keeps exactly ``k`` cells), as do the in-graph pre-
  and post-processing (:func:`fornet.export.fp16.convert_to_fp16`).

Tool: NVIDIA ModelOpt's ONNX PTQ (``modelopt.onnx.quantization.quantize``), which implements
these rules and calibrates on the CPU through ONNX Runtime. It is an optional extra
(``pip install 'fornet-deploy[int8-tensorrt]'``, see pyproject.toml) and runs in a child process
(:mod:`fornet.export.int8.modelopt_worker`). Three adaptations:

* ModelOpt upgrades the graph to opset 19 with ``onnx.version_converter``, which drops
  model-local functions; the gate's function is re-attached at opset 19 before ModelOpt sees the
  graph, so ONNX Runtime can calibrate a graph holding the ``fornet::TopKGate`` node;
* its FP16 conversion needs TensorRT for a graph with a custom node, so ModelOpt runs with
  ``high_precision_dtype="fp32"`` and this package's own FP16 conversion follows;
* the scales are the project's calibrated ranges (``fornet_int8.ranges.json``, the same as the
  ONNX Runtime file's), handed over as a TensorRT calibration cache: one calibration serves both
  files and is reused on the same terms.
"""
# ruff: noqa: TID253

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, version_converter

from fornet.calibration.int8_calibrate import ActivationRanges
from fornet.export.fp16 import convert_to_fp16
from fornet.export.int8.modelopt_worker import ModelOptJob
from fornet.export.int8.placement import placement_issues
from fornet.export.int8.qdq_graph import Int8GraphError
from fornet.export.onnx_function import attach_gate_function, strip_gate_function
from fornet.export.tensorrt.calibration_cache import format_trt_cache

TRT_INT8_NAME = "fornet_int8_tensorrt.onnx"
#: The opset ModelOpt's INT8 path works in (FP16 scales in Q/DQ need 19).
MODELOPT_OPSET = 19
@dataclass(frozen=True)
class ModelOptSettings:
    """The NVIDIA ModelOpt settings of ``fornet_int8_tensorrt.onnx``."""

    quantize_mode: str
    high_precision_dtype: str
    calibration_eps: tuple[str, ...]
    scales: str


#: ModelOpt settings recorded in the manifest.
MODELOPT_SETTINGS = ModelOptSettings(quantize_mode="int8", high_precision_dtype="fp32 (then fornet.export.fp16)",
                                     calibration_eps=("cpu",), scales="fornet_int8.ranges.json via a TensorRT cache")
INSTALL_HINT = "pip install 'fornet-deploy[int8-tensorrt]'"
_CACHE_VERSION = 100300  # any 10.x header: ModelOpt reads only the scales


def require_modelopt() -> str:
    """The installed ModelOpt version, or :class:`Int8GraphError` naming the install command.

    Only looks the package up: importing ``modelopt.onnx`` would patch ONNX Runtime's quantizer
    in this process (see :mod:`fornet.export.int8.modelopt_worker`).
    """
    if importlib.util.find_spec("modelopt") is None:
        raise Int8GraphError(f"the TensorRT INT8 file needs NVIDIA ModelOpt's ONNX quantizer, which is not "
                             f"installed; install it with `{INSTALL_HINT}` (CPU only, no TensorRT needed), or pass "
                             "--no-tensorrt-int8")
    return metadata.version("nvidia-modelopt")


def prepare_for_modelopt(model: ModelProto) -> ModelProto:
    """``model`` at opset 19, with the gate's model-local function (if any) rebuilt for that opset."""
    had_function = any(function.name == "TopKGate" for function in model.functions)
    converted = version_converter.convert_version(strip_gate_function(model), MODELOPT_OPSET)
    return attach_gate_function(converted) if had_function else converted


def _scales(ranges: ActivationRanges) -> dict[str, float]:
    """Symmetric INT8 scale (amax / 127) of every calibrated tensor with a non-zero range."""
    scales = {name: max(abs(lo), abs(hi)) / 127.0 for name, (lo, hi) in ranges.ranges.items()}
    return {name: scale for name, scale in scales.items() if scale > 0.0}


def quantize_for_tensorrt(fp32_path: str | os.PathLike[str], ranges: ActivationRanges,
                          calibration: np.ndarray, keep_float: Sequence[str]) -> ModelProto:
    """The TensorRT-targeted Q/DQ graph of ``fp32_path`` (FP16 base), checked against the placement rules.

    Args:
        fp32_path: ``fornet.onnx``.
        ranges: its calibrated ranges (the scales used).
        calibration: a few network inputs (ModelOpt runs its own calibration pass before the
            scales are replaced by ``ranges``; a handful of images is enough).
        keep_float: node names left unquantized (the selector head, the gate, fallback layers).

    Raises:
        Int8GraphError: ModelOpt is missing or failed, or the result breaks a placement rule.
    """
    require_modelopt()
    with tempfile.TemporaryDirectory(prefix="fornet-int8-trt-") as tmp:
        work = Path(tmp)
        source, cache, out = work / "fornet_opset19.onnx", work / "scales.cache", work / "q.onnx"
        onnx.save(prepare_for_modelopt(onnx.load(fp32_path)), source)
        cache.write_text(format_trt_cache(_scales(ranges), _CACHE_VERSION), encoding="utf-8")
        np.save(work / "calibration.npy", calibration)
        job = ModelOptJob(source=str(source), scales_cache=str(cache), calibration=str(work / "calibration.npy"),
                          out=str(out), nodes_to_exclude=tuple(keep_float)).save(work / "job.json")
        command = [sys.executable, "-m", "fornet.export.int8.modelopt_worker", str(job)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise Int8GraphError(f"ModelOpt could not quantize {Path(fp32_path).name} for TensorRT:\n{tail}")
        quantized = onnx.load(out)
    model = convert_to_fp16(quantized)
    issues = placement_issues(model, keep_float)
    if issues:
        listed = "\n".join(f"  {issue}" for issue in issues)
        raise Int8GraphError(f"the TensorRT INT8 graph breaks TensorRT's Q/DQ placement rules:\n{listed}")
    return model
