"""What the exported graph takes and returns: optional in-graph pre- and post-processing.

Input ``image``:

* ``normalized`` (default): ``N x 3 x H x W`` float32, RGB, already ``(x / 255 - mean) / std``.
* ``raw``: ``N x H x W x 3`` uint8 camera frames in ``channel_order`` (RGB or BGR). The graph
  casts (the input's only consumer: TensorRT's parser takes no UINT8 intermediate tensor),
  transposes to NCHW, reorders BGR to RGB (a constant Gather) and normalises with one
  per-channel multiply-add: ``x * (1 / (255 std)) - mean / std``. No resize: frames must
  already have the export size.

Outputs, in order:

* ``logits`` (default): ``N x classes x H x W`` float32 at the input resolution, or
* ``labels``: ``N x H x W`` uint8 (or int32) class indices: ``ArgMax`` over the classes of the
  same full-resolution logits, so labels equal ``logits.argmax(1)`` exactly. The argmax runs at
  the input resolution after the bilinear upsample; it reads the ``classes x H x W`` float32
  map once (memory bound: ~19 x 4 bytes per pixel) and writes 1 (or 4) bytes per pixel, which
  also cuts the device-to-host copy 76x (19x for int32) against fetching ``logits``.
* ``masks``: ``N x R x h x w`` float32, the gate's nested Top-K masks on the selector grid (an
  extra output used by the verification to count the selected cells per ratio).
"""
# ruff: noqa: TID253

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fornet.contract import LABELS_NAME
from fornet.export.options import IOFormat
from fornet.model import FoRNet


class ExportWrapper(nn.Module):
    """``image -> (logits | labels, masks)`` around a FoR-Net whose gate is the export gate.

    The model's gate must be :class:`~fornet.export.gate_export.ExportTopKGate` (see
    :func:`~fornet.export.gate_export.export_gate`), whose single stacked mask tensor becomes
    the ``masks`` output.
    """

    scale: Tensor
    shift: Tensor

    def __init__(self, model: FoRNet, io: IOFormat, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.io = io
        mean_t = torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1)
        std_t = torch.tensor([float(s) for s in std]).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", -mean_t / std_t, persistent=False)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = image
        if self.io.input == "raw":
            # Cast first: TensorRT's ONNX parser rejects UINT8 intermediate tensors ("TensorRT does not
            # support UINT8 types for intermediate tensors!"), so the uint8 input goes straight into Cast.
            x = image.float().permute(0, 3, 1, 2)
            if self.io.channel_order == "BGR":
                x = x[:, [2, 1, 0]]
            x = x * self.scale + self.shift
        logits, _, masks = self.model(x)
        if self.io.output == LABELS_NAME:
            dtype = torch.uint8 if self.io.label_dtype == "uint8" else torch.int32
            return logits.argmax(dim=1).to(dtype), masks[0]
        return logits, masks[0]
