"""The JSON sidecar written next to every exported ONNX file (``<file>.onnx.json``).

It carries what a deployment needs besides the graph: variant and architecture, classes and
colours, input size, layout, dtype and normalisation, the outputs, the Top-K ratios and k
values, the opset, checkpoint and ONNX sha256 and the tool version, plus the verification
report. Keeping metadata beside the file (never inside an engine) keeps TensorRT plans pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fornet import __version__
from fornet.atomic import write_text_atomic
from fornet.export.gate_export import GATE_DOMAIN, GATE_OP, PLUGIN_VERSION
from fornet.export.prepost import INPUT_NAME, MASKS_NAME, IOFormat
from fornet.export.verify import VerificationReport
from fornet.hashing import sha256_file
from fornet.model import FoRNetConfig

SIDECAR_FORMAT = "fornet-deploy/onnx-sidecar/1"


def class_table(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Class names and RGB colours: Cityscapes' for 19 classes, generic ones otherwise."""
    from fornet.calibration.labels import CLASS_NAMES, TRAIN_COLORS

    if num_classes == len(CLASS_NAMES):
        return list(CLASS_NAMES), TRAIN_COLORS.tolist()
    colors = [[(37 * i) % 256, (101 * i + 80) % 256, (173 * i + 160) % 256] for i in range(num_classes)]
    return [f"class_{i}" for i in range(num_classes)], colors


@dataclass(frozen=True)
class ExportDescription:
    """Everything about an export that both the FP32 and the FP16 sidecar record."""

    variant: str | None
    config: FoRNetConfig
    mean: tuple[float, ...]
    std: tuple[float, ...]
    io: IOFormat
    input_size: tuple[int, int]
    batch: int
    dynamic_batch: bool
    ks: tuple[int, ...]
    gate: str
    opset: int
    checkpoint: Path

    @property
    def grid(self) -> tuple[int, int]:
        """Selector grid ``(h, w)``."""
        stride = self.config.output_stride
        return self.input_size[0] // stride, self.input_size[1] // stride


def _tensor(name: str, dtype: str, shape: list[Any], layout: str, description: str) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape, "layout": layout, "description": description}


def build_sidecar(desc: ExportDescription, onnx_path: Path, precision: str, io_fp16: bool,
                  report: VerificationReport | None) -> dict[str, Any]:
    """The sidecar of one exported file (``precision`` is ``fp32`` or ``fp16``)."""
    names, colors = class_table(desc.config.num_classes)
    h, w = desc.input_size
    gh, gw = desc.grid
    n: Any = "batch" if desc.dynamic_batch else desc.batch
    float_io = "float16" if io_fp16 else "float32"
    if desc.io.input == "raw":
        image = _tensor(INPUT_NAME, "uint8", [n, h, w, 3], "NHWC",
                        f"{desc.io.channel_order} camera frames 0..255; normalisation is in the graph")
    else:
        image = _tensor(INPUT_NAME, float_io, [n, 3, h, w], "NCHW", "RGB, (x / 255 - mean) / std")
    if desc.io.output == "labels":
        main = _tensor("labels", desc.io.label_dtype, [n, h, w], "NHW",
                       "class index per pixel: argmax over classes of the full-resolution logits")
    else:
        main = _tensor("logits", float_io, [n, desc.config.num_classes, h, w], "NCHW",
                       "class scores at the input resolution (bilinear upsample, align_corners=False)")
    masks = _tensor(MASKS_NAME, float_io, [n, len(desc.ks), gh, gw], "NCHW",
                    "extra output: the gate's nested Top-K masks on the selector grid, one channel per ratio")
    return {
        "format": SIDECAR_FORMAT,
        "tool": {"name": "fornet-deploy", "version": __version__},
        "onnx": {"file": onnx_path.name, "sha256": sha256_file(onnx_path), "precision": precision,
                 "opset": desc.opset, "custom_opsets": {GATE_DOMAIN: 1} if desc.gate == "plugin" else {}},
        "checkpoint": {"file": desc.checkpoint.name, "sha256": sha256_file(desc.checkpoint)},
        "variant": desc.variant,
        "config": desc.config.to_dict(),
        "classes": names,
        "colors": colors,
        "input": {**image, "size": [h, w], "channel_order": desc.io.channel_order if desc.io.input == "raw"
                  else "RGB", "mean": list(desc.mean), "std": list(desc.std),
                  "normalization_in_graph": desc.io.input == "raw", "dynamic_batch": desc.dynamic_batch},
        "outputs": [main, masks],
        "topk": {
            "ratios": list(desc.config.ratios), "ks": list(desc.ks), "grid": [gh, gw],
            "output_stride": desc.config.output_stride, "gate": desc.gate,
            "node": ({"op_type": GATE_OP, "domain": GATE_DOMAIN, "plugin_version": PLUGIN_VERSION,
                      "plugin_namespace": GATE_DOMAIN, "local_function": True}
                     if desc.gate == "plugin" else None),
        },
        "verification": report.to_dict() if report is not None else None,
    }


def write_sidecar(onnx_path: Path, data: dict[str, Any]) -> Path:
    """Write ``<onnx_path>.json`` atomically; return its path."""
    path = onnx_path.with_name(onnx_path.name + ".json")
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return path
