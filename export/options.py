"""The export's options, declared once and importable without torch: ``fornet export --help`` and its
parser read them here, :func:`fornet.export.api.export_onnx` takes them as a value.

:class:`IOFormat` is what the exported graph takes and returns (:mod:`fornet.export.prepost` builds
it into the graph); :class:`ExportOptions` is the rest of the flags.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fornet.contract import LABELS_NAME, LOGITS_NAME, MASKS_NAME
from fornet.export.errors import ExportError
from fornet.export.int8.options import Int8Options
from fornet.lazy import lazy_import
from fornet.model.memory import TARGET_MEMORY_GIB
from fornet.options import OptionGroup, hw_arg, option, percent_arg, positive_int_arg

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy_import("torch")  # only example_input (tracing) needs it

INPUT_FORMATS = ("normalized", "raw")
CHANNEL_ORDERS = ("RGB", "BGR")
OUTPUT_FORMATS = (LOGITS_NAME, LABELS_NAME)
LABEL_DTYPES = ("uint8", "int32")
PREPOST = OptionGroup("in-graph pre/post-processing")


@dataclass(frozen=True)
class IOFormat:
    """The graph's input and output conventions (see :mod:`fornet.export.prepost`)."""

    input: str = option("normalized", flag="--input", choices=INPUT_FORMATS, group=PREPOST,
                        help="normalized: Nx3xHxW float RGB, already normalised; raw: NxHxWx3 uint8 frames, "
                             "normalisation folded into the graph")
    channel_order: str = option("RGB", flag="--channel-order", choices=CHANNEL_ORDERS, group=PREPOST,
                                help="channel order of --input raw frames")
    output: str = option(LOGITS_NAME, flag="--output", choices=OUTPUT_FORMATS, group=PREPOST,
                         help="logits: NxCxHxW float scores; labels: NxHxW class indices (argmax at the input "
                              "resolution, in the graph)")
    label_dtype: str = option("uint8", flag="--label-dtype", choices=LABEL_DTYPES, group=PREPOST,
                              help="dtype of --output labels")

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.input, INPUT_FORMATS, "input format"),
                                     (self.channel_order, CHANNEL_ORDERS, "channel order"),
                                     (self.output, OUTPUT_FORMATS, "output format"),
                                     (self.label_dtype, LABEL_DTYPES, "label dtype")):
            if value not in allowed:
                raise ExportError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
        if self.channel_order != "RGB" and self.input != "raw":
            raise ExportError("--channel-order applies to --input raw only; normalised input is always RGB")

    @property
    def output_names(self) -> list[str]:
        """Graph output names, in order."""
        return [self.output, MASKS_NAME]

    def example_input(self, batch: int, size: tuple[int, int]) -> Tensor:
        """A tensor of the graph input's shape and dtype (for tracing)."""
        h, w = size
        if self.input == "raw":
            return torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
        return torch.randn(batch, 3, h, w)



GATES = ("auto", "plugin", "native")
#: Opsets accepted: CastLike (in the gate function) needs 15; the TorchScript exporter stops at 20.
OPSET_RANGE = (15, 20)
GRAPH = OptionGroup("graph")
PRECISION = OptionGroup("precision")
VERIFICATION = OptionGroup("verification (PyTorch vs ONNX Runtime)")


@dataclass(frozen=True)
class ExportOptions:
    """How to export (the CLI flags, as a value).

    Attributes:
        input_size: ``(H, W)`` of the network input; both divisible by the output stride.
        batch: static batch size (the example batch when ``dynamic_batch``).
        dynamic_batch: make the batch dimension dynamic.
        opset: ONNX opset of the standard ops.
        gate: ``"auto"`` (default; native when every k fits TensorRT's TopK limit 3840, else plugin; the
            choice is in the result), ``"plugin"`` (one ``fornet::TopKGate`` node with a local function) or
            ``"native"`` (standard ops inlined; every k must be <= 3840).
        fp16: also write the FP16 mixed-precision ``fornet_fp16.onnx``.
        io_fp16: FP16 model inputs and outputs in the FP16 file (default FP32).
        io: in-graph pre/post-processing (raw uint8 input, labels output).
        verify: compare ONNX Runtime with PyTorch before publishing each file.
        verify_data: Cityscapes-layout folder for verification images (default: generated scenes).
        verify_split: split of ``verify_data`` to read.
        verify_images: number of verification images.
        fp32_threshold, fp16_threshold: argmax agreement each file must reach.
        progress: show progress bars and a line per step on stderr (the command shows them on a terminal only).
        target: the Jetson module the engine will run on: input sizes whose engine cannot fit its memory
            are refused before any work (this machine's memory is always checked for the export itself); a
            DeepStream package for a module without NVENC uses the software encoder.
        overwrite: replace an earlier export of another kind in the folder (see :mod:`fornet.export.replacement`).
        int8: also write the INT8 files (:class:`~fornet.export.int8.options.Int8Options`).
    """

    input_size: tuple[int, int] = option((1024, 2048), flag="--input-size", parse=hw_arg, metavar="HxW",
                                         help="network input size, divisible by the output stride", group=GRAPH)
    batch: int = option(1, flag="--batch", parse=positive_int_arg, metavar="N",
                        help="frames per engine call: the graph's static batch", group=GRAPH)
    dynamic_batch: bool = option(False, flag="--dynamic-batch", group=GRAPH,
                                 help="make the batch dimension dynamic (--batch is then the example/verification "
                                      "batch)")
    opset: int = option(17, flag="--opset", parse=int, metavar="N", group=GRAPH,
                        help=f"ONNX opset, {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
    gate: str = option("auto", flag="--gate", choices=GATES, group=GRAPH,
                       help="plugin: one fornet::TopKGate node (TensorRT plugin; model-local function for other "
                            "runtimes); native: standard ops inlined, needs every k <= 3840; auto: native when "
                            "every k <= 3840, else plugin")
    fp16: bool = option(False, flag="--fp16", group=PRECISION,
                        help="also write fornet_fp16.onnx: FP16 weights/activations, selector head and Top-K gate "
                             "selection in FP32 (for strongly typed TensorRT builds)")
    io_fp16: bool = option(False, flag="--io", choices=("fp32", "fp16"), convert="fp16".__eq__, action="store",
                           flag_default="fp32", group=PRECISION,
                           help="float type of the FP16 file's inputs and outputs")
    io: IOFormat = field(default_factory=IOFormat)
    verify: bool = option(True, flag="--no-verify", help="skip the verification", group=VERIFICATION)
    verify_data: Path | None = option(None, flag="--verify-data", parse=Path, metavar="DIR", group=VERIFICATION,
                                      default_text="generated street scenes",
                                      help="Cityscapes-layout folder to take images from")
    verify_split: str = option("val", flag="--verify-split", help="split of --verify-data", group=VERIFICATION)
    verify_images: int = option(2, flag="--verify-images", parse=int, metavar="N", group=VERIFICATION,
                                help="number of verification images")
    fp32_threshold: float = option(0.999, flag="--fp32-threshold", parse=percent_arg, metavar="PCT",
                                   default_text="99.9", group=VERIFICATION,
                                   help="argmax agreement the FP32 file must reach, in percent")
    fp16_threshold: float = option(0.99, flag="--fp16-threshold", parse=percent_arg, metavar="PCT",
                                   default_text="99.0", group=VERIFICATION,
                                   help="argmax agreement the FP16 file must reach, in percent")
    progress: bool = option(True, flag="--quiet", convert=operator.not_,
                            help="no progress (shown on a terminal, or where FORNET_PROGRESS=1)")
    target: str | None = option(None, flag="--target", choices=tuple(TARGET_MEMORY_GIB), group=GRAPH,
                                default_text="none",
                                help="Jetson module the engine will run on: refuse an input size or batch whose "
                                     "engine cannot fit its memory (this machine is always checked for the export); "
                                     "a --deepstream package for a module without NVENC (Orin Nano) encodes in "
                                     "software (enc-type=1)")
    overwrite: bool = option(False, flag="--overwrite", group=GRAPH,
                             help="replace an earlier export of another kind in --out (another input or output "
                                  "format, or files this export does not produce); without it that is refused")
    int8: Int8Options | None = None

    def validate(self) -> None:
        """Raise :class:`ExportError` for option values that cannot work together."""
        if self.gate not in GATES:
            raise ExportError(f"unknown gate mode {self.gate!r}; choose one of {', '.join(GATES)}")
        if not OPSET_RANGE[0] <= self.opset <= OPSET_RANGE[1]:
            raise ExportError(f"opset {self.opset} is not supported; choose {OPSET_RANGE[0]}..{OPSET_RANGE[1]} "
                              "(17 is what TensorRT 10.3 and later parse best)")
        if self.batch < 1:
            raise ExportError(f"batch must be at least 1, got {self.batch}")
        if self.io_fp16 and not self.fp16:
            raise ExportError("--io fp16 applies to the FP16 file only; add --fp16")
        if self.verify_images < 1:
            raise ExportError(f"--verify-images must be at least 1, got {self.verify_images}")
        for name, value in (("fp32", self.fp32_threshold), ("fp16", self.fp16_threshold)):
            if not 0.0 < value <= 1.0:
                raise ExportError(f"the {name} agreement threshold must be in (0, 1], got {value}; "
                                  "e.g. 0.999 for 99.9%")
        if self.int8 is not None:
            self.int8.validate()
