"""What a deployed model takes and returns, read from its JSON sidecar (no ONNX, TensorRT or torch).

``fornet-export`` writes ``fornet.onnx.json`` beside every ONNX file (see
:mod:`fornet.export.sidecar`); a TensorRT plan's own sidecar ``fornet.plan.json`` names the ONNX
file it was built from, whose sidecar then describes the plan too. :class:`ModelIO` is the part a
runtime needs: input size, layout, dtype and normalisation, the output, batch, classes, colours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fornet.runtime.errors import FornetRuntimeError

#: Equals ``fornet.export.sidecar.SIDECAR_FORMAT`` (a test checks it; importing that module needs torch).
SIDECAR_FORMAT = "fornet-deploy/onnx-sidecar/1"
_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int32": np.int32}


class SidecarError(FornetRuntimeError):
    """A model's sidecar JSON is missing, unreadable or not a fornet-deploy sidecar."""


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
        input_name="image", input_size=(int(input_size[0]), int(input_size[1])),
        input_dtype=np.dtype(np.float32), raw_input=False, channel_order="RGB",
        mean=_triplet(mean, "mean"), std=_triplet(std, "std"), output_name="logits",
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


def model_io_from_sidecar(data: Any, source: str) -> ModelIO:
    """Parse the content of an ONNX sidecar (``source`` names it in error messages)."""
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise SidecarError(f"{source} is not a fornet-deploy ONNX sidecar ({SIDECAR_FORMAT}); "
                           "re-export the model with fornet-export, which writes <model>.onnx.json")
    try:
        image = data["input"]
        output = data["outputs"][0]
        classes = tuple(str(name) for name in data["classes"])
        raw = bool(image["normalization_in_graph"])
        shape = image["shape"]
        return ModelIO(
            input_name=str(image["name"]),
            input_size=(int(image["size"][0]), int(image["size"][1])),
            input_dtype=_dtype(image["dtype"], source),
            raw_input=raw,
            channel_order=str(image["channel_order"]),
            mean=_triplet(image["mean"], f"{source}: input mean"),
            std=_triplet(image["std"], f"{source}: input std"),
            output_name=str(output["name"]),
            output_dtype=_dtype(output["dtype"], source),
            labels_output=output["name"] == "labels",
            batch=None if image.get("dynamic_batch") or not isinstance(shape[0], int) else int(shape[0]),
            classes=classes,
            colors=_colors(data["colors"], len(classes), source),
            variant=data.get("variant"),
            export_precision=(data.get("onnx") or {}).get("precision"),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SidecarError(f"{source} lacks a field or holds a bad value ({type(exc).__name__}: {exc}); "
                           "re-export the model with fornet-export") from exc


def read_sidecar(path: str | os.PathLike[str]) -> ModelIO:
    """Read and parse one ONNX sidecar file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SidecarError(f"sidecar {path} not found; fornet-export writes it beside the ONNX file: keep them "
                           "together, or pass the sidecar's path explicitly") from exc
    except (OSError, ValueError) as exc:
        raise SidecarError(f"cannot read sidecar {path} ({exc}); re-export the model with fornet-export") from exc
    return model_io_from_sidecar(data, str(path))


def sidecar_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Where the sidecar describing ``model_path`` (``.onnx`` or a TensorRT plan) is expected.

    An ONNX file's is ``<file>.json``. A plan's is that of its source ONNX, named in the plan's own
    ``<plan>.json`` and looked for beside the plan, else ``<plan stem>.onnx.json`` (what
    ``fornet-build`` produces from ``<stem>.onnx`` by default).

    Raises:
        SidecarError: a plan whose sidecar cannot be found (the message names where it looked).
    """
    model = Path(model_path)
    if model.suffix == ".onnx":
        return model.with_name(model.name + ".json")
    from fornet.runtime.tensorrt.plan_metadata import read_engine_metadata

    metadata = read_engine_metadata(model)
    candidates = []
    source = (metadata or {}).get("source_onnx") or {}
    if source.get("file"):
        candidates.append(model.with_name(f"{source['file']}.json"))
    candidates.append(model.with_name(f"{model.stem}.onnx.json"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise SidecarError(f"no model sidecar for {model} (looked for {looked}); copy the <model>.onnx.json that "
                       "fornet-export wrote for the ONNX this plan was built from next to the plan, or pass "
                       "its path as sidecar=... / --sidecar")
