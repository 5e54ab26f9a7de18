"""``fornet info`` (alias ``fornet-info``): size, cost and Top-K facts of a FoR-Net variant at an input size,
or the contents of a built TensorRT plan (``--engine``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

from fornet.cli.command import Command
from fornet.model.config import VARIANTS
from fornet.options import OptionGroup, add_options, hw_arg, option, options_from_args

TARGET = OptionGroup(exclusive=True, required=True)


@dataclass(frozen=True)
class InfoOptions:
    """What to describe (one variant, every variant, or a plan) and how."""

    variant: str | None = option(None, flag="--variant", choices=tuple(VARIANTS), group=TARGET,
                                 help="variant to describe")
    all: bool = option(False, flag="--all", group=TARGET, help="a Markdown table of every variant")
    engine: str | None = option(None, flag="--engine", metavar="PLAN", group=TARGET,
                                help="describe a built TensorRT plan: I/O tensors, layers and precisions (needs "
                                     "TensorRT)")
    plugin: str | None = option(None, flag="--plugin", metavar="LIB", default_text="the usual search",
                                help="with --engine: the TopKGate plugin library")
    input_size: tuple[int, int] = option((1024, 2048), flag="--input-size", parse=hw_arg, metavar="HxW",
                                         default_text="1024x2048, full Cityscapes", help="input height x width")
    num_classes: int = option(19, flag="--num-classes", parse=int, help="classifier outputs")
    json: bool = option(False, flag="--json", help="print JSON instead of text")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Print the facts (text, Markdown table or JSON), or describe the plan."""
    options = options_from_args(InfoOptions, args)
    if options.engine:
        from fornet.export.tensorrt.inspect import describe_engine

        print(describe_engine(options.engine, options.plugin))
        return 0
    from fornet.model.info import format_info, format_table, variant_info

    names = list(VARIANTS) if options.all else [options.variant]
    infos = [variant_info(n, options.input_size, options.num_classes) for n in names]
    if options.json:
        print(json.dumps([asdict(i) for i in infos] if options.all else asdict(infos[0]), indent=2))
    elif options.all:
        print(format_table(infos))
    else:
        print(format_info(infos[0]))
    return 0


COMMAND = Command(
    name="info",
    alias="fornet-info",
    summary="parameters, GMACs and Top-K facts of a variant, or the contents of a TensorRT plan",
    description="Report parameters, GMACs, receptive field and Top-K k values of a FoR-Net variant.",
    add_arguments=lambda parser: add_options(parser, InfoOptions),
    run=run,
)
main = COMMAND.alias_main
