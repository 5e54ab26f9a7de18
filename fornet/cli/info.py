"""``fornet info`` (alias ``fornet-info``): size, cost and Top-K facts of a FoR-Net variant at an input size,
or what a model file is (``--model``: a TensorRT plan, an ONNX file with its sidecar, or a checkpoint)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fornet.cli.command import Command
from fornet.cli.output import CommandOutput
from fornet.export.describe import describe_onnx
from fornet.export.tensorrt.inspect import describe_engine
from fornet.model.config import VARIANTS, variant_option
from fornet.options import OptionGroup, add_options, hw_arg, json_option, option, options_from_args
from fornet.runtime.model_spec import ModelSpec

TARGET = OptionGroup(exclusive=True, required=True)


@dataclass(frozen=True)
class InfoOptions:
    """What to describe (one variant, every variant, or a model file) and how."""

    variant: str | None = variant_option(TARGET, "a variant to describe")
    model: Path | None = option(None, flag="--model", aliases=("--engine",), parse=Path, metavar="PATH", group=TARGET,
                                help="describe a model file: a TensorRT plan (needs TensorRT), an ONNX file or a "
                                     "checkpoint (--engine is another name of --model)")
    all: bool = option(False, flag="--all", group=TARGET, help="a Markdown table of every variant")
    input_size: tuple[int, int] = option((1024, 2048), flag="--input-size", parse=hw_arg, metavar="HxW",
                                         default_text="1024x2048, full Cityscapes", help="input height x width")
    num_classes: int = option(19, flag="--num-classes", parse=int, help="classifier outputs")
    json: Path | None = json_option("the facts as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--variant | --all | --model`` (``--engine`` another name of ``--model``), then the options."""
    add_options(parser, InfoOptions)
    add_options(parser, ModelSpec, only=("sidecar", "plugin"))


def describe_model(spec: ModelSpec, input_size: tuple[int, int]) -> str:
    """What the model file of ``spec`` is: a plan (needs TensorRT), an ONNX file, or a checkpoint (its
    variant's facts at ``input_size``)."""
    name = spec.backend_class().NAME
    if name == "tensorrt":
        return describe_engine(spec.path, spec.plugin)
    if name == "torch":
        from fornet.model.checkpoint import load_model
        from fornet.model.info import format_info, variant_info

        model = load_model(spec.path)
        info = variant_info(model.checkpoint_info.variant, input_size, model.num_classes)
        return f"checkpoint {spec.path} ({model.checkpoint_info.variant})\n{format_info(info)}"

    return describe_onnx(spec.path, spec.sidecar)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Print the facts (text, Markdown table or JSON), or describe the model file."""
    options = options_from_args(InfoOptions, args)
    if options.model is not None:
        spec = ModelSpec(options.model, sidecar=args.sidecar, plugin=args.plugin)
        print(describe_model(spec, options.input_size))
        return 0
    from fornet.model.info import VariantReport, format_info, format_table, variant_info

    output = CommandOutput(options.json)
    names = list(VARIANTS) if options.all else [options.variant]
    infos = [variant_info(n, options.input_size, options.num_classes) for n in names]
    if options.json is not None:
        output.record(VariantReport(tuple(infos)))
    elif options.all:
        output.say(format_table(infos))
    else:
        output.say(format_info(infos[0]))
    return 0


COMMAND = Command(
    name="info",
    alias="fornet-info",
    summary="parameters, GMACs and Top-K facts of a variant, or what a model file (plan, ONNX, checkpoint) is",
    description="Report parameters, GMACs, receptive field and Top-K k values of a FoR-Net variant, or describe a "
                "model file: a TensorRT plan (I/O, layers, precisions; needs TensorRT), an ONNX file (I/O, "
                "precision, gate, sha256, sidecar) or a checkpoint.",
    add_arguments=add_arguments,
    run=run,
    epilog="--engine is another name of --model.",
)
main = COMMAND.alias_main
