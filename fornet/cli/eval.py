"""``fornet eval`` (alias ``fornet-eval``): mIoU of a FoR-Net checkpoint on a Cityscapes split."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from fornet.atomic import check_output_dir, check_output_file
from fornet.calibration.labels import CLASS_NAMES
from fornet.calibration.metrics import format_iou_table
from fornet.cli.command import Command
from fornet.model.config import VARIANTS
from fornet.options import add_options, format_hw, hw_arg, option, options_from_args


@dataclass(frozen=True)
class EvalOptions:
    """What to score, on which data, and where the results go."""

    ckpt: Path = option(flag="--ckpt", parse=Path, required=True, help="checkpoint file (.pth)")
    data: Path = option(flag="--data", parse=Path, required=True,
                        help="Cityscapes root, the folder holding leftImg8bit/ and gtFine/")
    split: str = option("val", flag="--split", help="split to evaluate")
    variant: str | None = option(None, flag="--variant", choices=tuple(VARIANTS),
                                 help="architecture, for bare state_dicts that do not record it")
    input_size: tuple[int, int] | None = option(None, flag="--input-size", parse=hw_arg, metavar="HxW",
                                                default_text="native size, e.g. 1024x2048",
                                                help="resize images to HxW for the network")
    limit: int | None = option(None, flag="--limit", parse=int, metavar="N", help="evaluate only the first N images")
    save_predictions: Path | None = option(None, flag="--save-predictions", parse=Path, metavar="DIR",
                                           help="write <stem>_pred_labelIds.png for the official evaluator into DIR")
    json: Path | None = option(None, flag="--json", parse=Path, metavar="OUT", help="write the scores as JSON to OUT")
    device: str = option("auto", flag="--device",
                         help="torch device: auto (cuda if available), cpu, cuda, cuda:1 ...")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Check the outputs and the data, score the checkpoint, print the table and optionally write the JSON."""
    from fornet.calibration.cityscapes import CityscapesDataset, scan_split
    from fornet.model.checkpoint import load_model
    from fornet.model.evaluate import evaluate, resolve_device

    options = options_from_args(EvalOptions, args)
    if options.json is not None:
        check_output_file(options.json, "--json")
    if options.save_predictions is not None:
        check_output_dir(options.save_predictions, "--save-predictions")
    device = resolve_device(options.device)
    scan_split(options.data, options.split, progress=sys.stderr.isatty())
    dataset = CityscapesDataset(options.data, options.split, require_labels=True)
    model = load_model(options.ckpt, options.variant, map_location=device)
    result = evaluate(model, dataset, options.input_size, device, options.save_predictions,
                      progress=sys.stderr.isatty(), limit=options.limit)
    size = "native size" if options.input_size is None else format_hw(options.input_size)
    print(f"{result.n_images} {options.split} images at {size} on {device} in {result.seconds:.1f} s")
    print(format_iou_table(result.iou, CLASS_NAMES))
    print(f"pixel accuracy: {100 * result.pixel_accuracy:.2f}")
    baseline = result.confusion.majority_baseline_miou()
    print(f"trivial baseline (most frequent class everywhere): mIoU {100 * baseline:.2f}")
    if options.json is not None:
        result.to_report(checkpoint=str(options.ckpt), variant=model.checkpoint_info.variant, data=str(options.data),
                         split=options.split, input_size=options.input_size, device=device).save(options.json)
        print(f"wrote {options.json}")
    print(f"mIoU: {100 * result.miou:.2f}")
    return 0


COMMAND = Command(
    name="eval",
    alias="fornet-eval",
    summary="mIoU of a checkpoint on a Cityscapes split (official convention)",
    description="Evaluate a FoR-Net checkpoint on a Cityscapes split (official mIoU convention: one confusion "
                "matrix over the split, ignored pixels excluded).",
    add_arguments=lambda parser: add_options(parser, EvalOptions),
    run=run,
    epilog="Predictions saved with --save-predictions are labelId PNGs for cityscapesscripts: "
           "CITYSCAPES_DATASET=DATA CITYSCAPES_RESULTS=DIR csEvalPixelLevelSemanticLabeling "
           "(its iIoU step calls np.in1d, which NumPy 2.4 removed: run it with numpy<2.4).",
)
main = COMMAND.alias_main
