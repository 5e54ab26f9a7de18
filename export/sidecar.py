"""The JSON sidecar written next to every exported ONNX file (``<file>.onnx.json``).

It carries what a deployment needs besides the graph: variant and architecture, classes and
colours, input size, layout, dtype and normalisation, the outputs, the Top-K ratios and k
values, the opset, checkpoint and ONNX sha256 and the tool version, plus the verification
report. Keeping metadata beside the file (never inside an engine) keeps TensorRT plans pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fornet import __version__
from fornet.calibration.labels import class_table
from fornet.contract import INPUT_NAME, LABELS_NAME, LOGITS_NAME, MASKS_NAME, TOPK_GATE
from fornet.export.options import IOFormat
from fornet.hashing import sha256_file
from fornet.model import FoRNetConfig
from fornet.model.memory import activation_profile
from fornet.records import FileDigest
from fornet.runtime.model_io import (
    GateNodeInfo,
    InputInfo,
    ModelSidecar,
    OnnxFileInfo,
    TensorInfo,
    ToolInfo,
    TopKInfo,
    VerificationReport,
)


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


def interface(desc: ExportDescription, io_fp16: bool) -> tuple[InputInfo, tuple[TensorInfo, TensorInfo]]:
    """The graph's input (with its preprocessing contract) and outputs, as the sidecar records them."""
    h, w = desc.input_size
    gh, gw = desc.grid
    n: int | str = "batch" if desc.dynamic_batch else desc.batch
    float_io = "float16" if io_fp16 else "float32"
    raw = desc.io.input == "raw"
    if raw:
        image = (INPUT_NAME, "uint8", [n, h, w, 3], "NHWC",
                 f"{desc.io.channel_order} camera frames 0..255; normalisation is in the graph")
    else:
        image = (INPUT_NAME, float_io, [n, 3, h, w], "NCHW", "RGB, (x / 255 - mean) / std")
    if desc.io.output == LABELS_NAME:
        main = TensorInfo(LABELS_NAME, desc.io.label_dtype, [n, h, w], "NHW",
                          "class index per pixel: argmax over classes of the full-resolution logits")
    else:
        main = TensorInfo(LOGITS_NAME, float_io, [n, desc.config.num_classes, h, w], "NCHW",
                          "class scores at the input resolution (bilinear upsample, align_corners=False)")
    masks = TensorInfo(MASKS_NAME, float_io, [n, len(desc.ks), gh, gw], "NCHW",
                       "extra output: the gate's nested Top-K masks on the selector grid, one channel per ratio")
    return (InputInfo(*image, size=(h, w), channel_order=desc.io.channel_order if raw else "RGB", mean=desc.mean,
                      std=desc.std, normalization_in_graph=raw, dynamic_batch=desc.dynamic_batch), (main, masks))


def interface_summary(image: InputInfo, outputs: tuple[TensorInfo, ...]) -> str:
    """What a consumer of the graph depends on, in words: e.g. ``uint8 NHWC BGR input -> labels (uint8)``."""
    return f"{image.dtype} {image.layout} {image.channel_order} input -> {outputs[0].name} ({outputs[0].dtype})"


def build_sidecar(desc: ExportDescription, onnx_path: Path, precision: str, io_fp16: bool,
                  report: VerificationReport | None) -> ModelSidecar:
    """The sidecar of one exported file (``precision`` is ``fp32``, ``fp16`` or ``int8``)."""
    names, colors = class_table(desc.config.num_classes)
    gh, gw = desc.grid
    image, outputs = interface(desc, io_fp16)
    node = GateNodeInfo(op_type=TOPK_GATE.name, domain=TOPK_GATE.domain, plugin_version=TOPK_GATE.plugin_version,
                        plugin_namespace=TOPK_GATE.plugin_namespace, local_function=True)
    plugin_gate = desc.gate == "plugin"
    return ModelSidecar(
        tool=ToolInfo("fornet-deploy", __version__),
        onnx=OnnxFileInfo(file=onnx_path.name, sha256=sha256_file(onnx_path), precision=precision, opset=desc.opset,
                          custom_opsets={TOPK_GATE.domain: TOPK_GATE.opset_version} if plugin_gate else {}),
        checkpoint=FileDigest(desc.checkpoint.name, sha256_file(desc.checkpoint)),
        variant=desc.variant,
        config=desc.config,
        classes=tuple(names),
        colors=tuple(tuple(c) for c in colors),
        input=image,
        outputs=outputs,
        topk=TopKInfo(
            ratios=tuple(desc.config.ratios), ks=desc.ks, grid=(gh, gw), output_stride=desc.config.output_stride,
            gate=desc.gate,
            node=node if plugin_gate else None,
        ),
        verification=report,
        activations=activation_profile(desc.config),
    )


def write_sidecar(onnx_path: Path, sidecar: ModelSidecar) -> Path:
    """Write ``<onnx_path>.json`` atomically; return its path."""
    return sidecar.save(ModelSidecar.path_for(onnx_path))
