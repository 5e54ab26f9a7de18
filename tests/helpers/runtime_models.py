"""Small exported FoR-Nets shared by the runtime, segmenter and benchmark tests (the session fixture
``lite`` in conftest.py exports them once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.helpers.model_utils import realistic_model

#: Network input size of the test exports (the lite variant's stride is 16).
INPUT_SIZE = (64, 128)


@dataclass(frozen=True)
class LiteExport:
    """A seeded lite checkpoint and its exports."""

    checkpoint: Path
    onnx: Path  # fornet.onnx: normalised float32 input, logits output, batch 1
    onnx_fp16: Path  # fornet_fp16.onnx: float16 input and outputs
    raw_labels: Path  # raw BGR uint8 input, uint8 labels output, dynamic batch


def export_lite_models(root: Path) -> LiteExport:
    """A seeded lite checkpoint and its three exports in ``root`` (about 15 s)."""
    from fornet.export import ExportOptions, IOFormat, export_onnx
    from fornet.model import save_checkpoint

    checkpoint = root / "lite.pth"
    save_checkpoint(checkpoint, realistic_model("lite", seed=3), "lite")
    plain = export_onnx(checkpoint, root / "plain", ExportOptions(
        input_size=INPUT_SIZE, fp16=True, io_fp16=True, gate="plugin", verify=False, progress=False))
    raw = export_onnx(checkpoint, root / "raw", ExportOptions(
        input_size=INPUT_SIZE, dynamic_batch=True, batch=2, gate="plugin", verify=False, progress=False,
        io=IOFormat(input="raw", channel_order="BGR", output="labels")))
    assert plain.fp16_path is not None
    return LiteExport(checkpoint, plain.onnx_path, plain.fp16_path, raw.onnx_path)
