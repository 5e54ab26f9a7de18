"""What a deployed model takes and returns, read from its JSON sidecar (no ONNX, TensorRT or torch).

``fornet-export`` writes ``fornet.onnx.json`` beside every ONNX file (see
:mod:`fornet.export.sidecar`). :class:`ModelIO` is the part a runtime needs: input size, layout,
dtype and normalisation, the output, batch, classes, colours. A TensorRT plan is described by the
sidecar of the ONNX it was built from; finding that sidecar and checking that it belongs to the
plan is TensorRT's business (:mod:`fornet.runtime.tensorrt.plan_metadata`), not this module's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fornet.contract import INPUT_NAME, LABELS_NAME, LOGITS_NAME
from fornet.errors import RecordError
from fornet.hashing import sha256_file
from fornet.model.config import FoRNetConfig
from fornet.model.memory import ActivationProfile
from fornet.records import FileDigest, Record
from fornet.runtime.errors import FornetRuntimeError

_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int32": np.int32}


class SidecarError(RecordError, FornetRuntimeError):
    """A model's sidecar JSON is missing, unreadable, not a fornet-deploy sidecar, or describes another model."""


@dataclass(frozen=True)
class ToolInfo:
    """The program that wrote a record."""

    name: str
    version: str


@dataclass(frozen=True)
class OnnxFileInfo:
    """The ONNX file a sidecar describes."""

    file: str
    sha256: str
    precision: str
    opset: int
    custom_opsets: dict[str, int]


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output; a string dimension (``"batch"``) is dynamic."""

    name: str
    dtype: str
    shape: list[int | str]
    layout: str
    description: str


@dataclass(frozen=True)
class InputInfo(TensorInfo):
    """The image input with its preprocessing contract."""

    size: tuple[int, int]
    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalization_in_graph: bool
    dynamic_batch: bool


@dataclass(frozen=True)
class GateNodeInfo:
    """The custom Top-K gate node of a plugin-gated graph."""

    op_type: str
    domain: str
    plugin_version: str
    plugin_namespace: str
    local_function: bool


@dataclass(frozen=True)
class TopKInfo:
    """The Top-K gate: ratios, k per ratio, selector grid, and how it is exported."""

    ratios: tuple[float, ...]
    ks: tuple[int, ...]
    grid: tuple[int, int]
    output_stride: int
    gate: str
    node: GateNodeInfo | None


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of comparing one ONNX file with PyTorch (``fornet export`` records it in the sidecar).

    Attributes:
        precision: ``"fp32"`` or ``"fp16"`` (the ONNX file's).
        images: number of images compared.
        max_abs_logit_diff: largest ``|logit_onnx - logit_torch|`` (None for a labels output).
        argmax_agreement: fraction of pixels whose class equals PyTorch's.
        threshold: the agreement required to pass.
        mask_agreement: fraction of selector cells whose four mask bits equal PyTorch's.
        selected_cells: the distinct rows of ones-per-mask counts over the images of the ONNX
            output (one count per ratio); a passing file has exactly one row, equal to ``ks``.
        expected_cells: the node's ``ks``.
        passed: the verdict: the agreement reaches the threshold and every mask holds exactly
            ``k`` cells (the only row of ``selected_cells`` equals ``expected_cells``).
    """

    precision: str
    images: int
    max_abs_logit_diff: float | None
    argmax_agreement: float
    threshold: float
    mask_agreement: float
    selected_cells: list[list[int]]
    expected_cells: list[int]
    passed: bool

    def summary(self) -> str:
        """One line for the console."""
        diff = "n/a" if self.max_abs_logit_diff is None else f"{self.max_abs_logit_diff:.3g}"
        return (f"{self.precision}: {self.images} image(s), max |logit diff| {diff}, argmax agreement "
                f"{100 * self.argmax_agreement:.4f}% (need {100 * self.threshold:.2f}%), mask agreement "
                f"{100 * self.mask_agreement:.3f}%, selected cells per ratio "
                f"{' / '.join(map(str, self.selected_cells))} (k = {self.expected_cells}): "
                f"{'PASS' if self.passed else 'FAIL'}")


@dataclass(frozen=True)
class ModelSidecar(Record):
    """``<model>.onnx.json``: what a deployment needs besides the graph (written by ``fornet export``)."""

    FORMAT: ClassVar[str] = "fornet-deploy/onnx-sidecar"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy ONNX sidecar"
    FIX: ClassVar[str] = ("fornet-export writes it beside the ONNX file: keep them together, pass the sidecar's "
                          "path explicitly, or re-export the model with fornet-export")
    ERROR: ClassVar[type[RecordError]] = SidecarError

    tool: ToolInfo
    onnx: OnnxFileInfo
    checkpoint: FileDigest
    variant: str | None
    config: FoRNetConfig
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    input: InputInfo
    outputs: tuple[TensorInfo, ...]
    topk: TopKInfo
    verification: VerificationReport | None
    #: Activation sizes of the model, for the memory check before a runtime loads it.
    activations: ActivationProfile | None = None

    @staticmethod
    def path_for(onnx_path: str | os.PathLike[str]) -> Path:
        """``<file>.onnx`` -> ``<file>.onnx.json``."""
        onnx_file = Path(onnx_path)
        return onnx_file.with_name(onnx_file.name + ".json")

    def model_io(self, source: str) -> ModelIO:
        """The runtime's view of this contract (``source`` names the file in errors)."""
        if len(self.input.shape) != 4 or not self.outputs:
            raise SidecarError(f"{source} is damaged: its input must have 4 dimensions (has {self.input.shape}) and "
                               f"it must name an output (names {len(self.outputs)}); re-export the model with "
                               "fornet export to write it again")
        image, output = self.input, self.outputs[0]
        batch = image.shape[0]
        return ModelIO(
            input_name=image.name,
            input_size=image.size,
            input_dtype=_dtype(image.dtype, source),
            raw_input=image.normalization_in_graph,
            channel_order=image.channel_order,
            mean=image.mean,
            std=image.std,
            output_name=output.name,
            output_dtype=_dtype(output.dtype, source),
            labels_output=output.name == LABELS_NAME,
            batch=None if image.dynamic_batch or not isinstance(batch, int) else batch,
            classes=self.classes,
            colors=_colors(self.colors, len(self.classes), source),
            variant=self.variant,
            export_precision=self.onnx.precision,
        )


@dataclass(frozen=True)
class ModelIO:
    """The I/O contract of one deployed model.

    Attributes:
        input_name: the image input tensor.
        input_size: ``(H, W)`` the network sees.
        input_dtype: float32 / float16 (normalised NCHW) or uint8 (raw NHWC frames).
        raw_input: NHWC uint8 frames, normalisation folded into the graph (``--input raw``).
        channel_order: order the input expects (always RGB for normalised input).
        mean, std: per-channel RGB statistics for pixels scaled to [0, 1].
        output_name: ``logits`` (class scores) or ``labels`` (class indices).
        output_dtype: dtype of that output.
        labels_output: the model outputs class indices (argmax in the graph).
        batch: static batch size, or None for a dynamic batch.
        classes: class names, indexed by class id.
        colors: ``C x 3`` uint8 RGB colour of each class.
        variant, export_precision: as recorded at export (informational).
    """

    input_name: str
    input_size: tuple[int, int]
    input_dtype: np.dtype
    raw_input: bool
    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_name: str
    output_dtype: np.dtype
    labels_output: bool
    batch: int | None
    classes: tuple[str, ...]
    colors: np.ndarray = field(repr=False)
    variant: str | None = None
    export_precision: str | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def palette_bgr(self) -> np.ndarray:
        """``C x 3`` uint8 class colours in BGR order (for drawing on OpenCV frames)."""
        return np.ascontiguousarray(self.colors[:, ::-1])

    def input_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of an input batch of ``batch`` images."""
        h, w = self.input_size
        return (batch, h, w, 3) if self.raw_input else (batch, 3, h, w)

    def describe(self) -> str:
        """One line, e.g. ``lite fp32: 1x3x512x1024 float32 RGB -> logits float32, 19 classes``."""
        batch = "N" if self.batch is None else str(self.batch)
        layout = "x".join(str(d) for d in self.input_shape(1)[1:])
        return (f"{self.variant or 'model'} {self.export_precision or ''}: {batch}x{layout} {self.input_dtype} "
                f"{self.channel_order}{' raw' if self.raw_input else ''} -> {self.output_name} "
                f"{self.output_dtype}, {self.num_classes} classes").replace("  ", " ")


def make_model_io(input_size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                  classes: Sequence[str], colors: Any, *, variant: str | None = None,
                  export_precision: str | None = None) -> ModelIO:
    """The contract of a plain FoR-Net (normalised float32 RGB in, float32 logits out, any batch)."""
    return ModelIO(
        input_name=INPUT_NAME, input_size=(int(input_size[0]), int(input_size[1])),
        input_dtype=np.dtype(np.float32), raw_input=False, channel_order="RGB",
        mean=_triplet(mean, "mean"), std=_triplet(std, "std"), output_name=LOGITS_NAME,
        output_dtype=np.dtype(np.float32), labels_output=False, batch=None, classes=tuple(classes),
        colors=_colors(colors, len(classes), "the model"), variant=variant, export_precision=export_precision,
    )


def _triplet(values: Sequence[float], what: str) -> tuple[float, float, float]:
    items = [float(v) for v in values]
    if len(items) != 3:
        raise SidecarError(f"{what} needs 3 values (R, G, B), got {items}; re-export the model")
    return items[0], items[1], items[2]


def _colors(colors: Any, num_classes: int, source: str) -> np.ndarray:
    table = np.asarray(colors, dtype=np.int64)
    if table.shape != (num_classes, 3) or table.min(initial=0) < 0 or table.max(initial=0) > 255:
        raise SidecarError(f"{source}: colours must be {num_classes} RGB triplets in 0..255, got shape "
                           f"{table.shape}; re-export the model with fornet-export")
    out = table.astype(np.uint8)
    out.setflags(write=False)
    return out


def _dtype(name: Any, source: str) -> np.dtype:
    if name not in _DTYPES:
        raise SidecarError(f"{source}: unsupported tensor dtype {name!r} (expected one of {', '.join(_DTYPES)}); "
                           "re-export the model with fornet-export")
    return np.dtype(_DTYPES[name])


def read_sidecar(path: str | os.PathLike[str]) -> ModelIO:
    """Read one ONNX sidecar and return the model's I/O contract."""
    return ModelSidecar.load(path).model_io(str(path))


#: How a user who edited a model or its sidecar on purpose skips the binding check.
OVERRIDE_HINT = "if you changed the files on purpose, pass verify_sidecar=False (--no-verify-sidecar)"


def check_sidecar_binding(sidecar: ModelSidecar, sidecar_path: Path, onnx_path: Path) -> None:
    """Refuse a sidecar that was not written for the ONNX file ``onnx_path``.

    The file must have the sha256 its sidecar records. This is what catches a sidecar copied from
    another export (other classes, another precision) or an ONNX file replaced under an old sidecar.
    A plan's binding is checked by :func:`fornet.runtime.tensorrt.plan_metadata.check_plan_binding`.

    Raises:
        SidecarError: naming both files, what differs and how to fix it.
    """
    actual = sha256_file(onnx_path)
    if actual != sidecar.onnx.sha256:
        raise SidecarError(
            f"{sidecar_path} describes {sidecar.onnx.file} (sha256 {sidecar.onnx.sha256[:12]}..., "
            f"{sidecar.onnx.precision}, {len(sidecar.classes)} classes) but {onnx_path} has sha256 "
            f"{actual[:12]}...: the sidecar belongs to another export. Keep each ONNX file with the .json "
            f"fornet-export wrote beside it, or re-export; {OVERRIDE_HINT}")
