"""``fornet eval`` (alias ``fornet-eval``): mIoU of a FoR-Net model on a Cityscapes split.

A checkpoint runs in PyTorch (``fornet.model.evaluate``); an exported model (ONNX file, TensorRT plan)
runs through the :class:`~fornet.runtime.segmenter.Segmenter`; both are scored by the same loop.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fornet.atomic import check_output_dir
from fornet.calibration.cityscapes import CityscapesDataset, scan_split
from fornet.calibration.labels import CLASS_NAMES
from fornet.calibration.metrics import format_iou_table
from fornet.cli.command import Command
from fornet.cli.output import CommandOutput
from fornet.model.evaluate import check_class_count, evaluate, resolve_device, score_predictor
from fornet.options import (
    add_options,
    format_hw,
    json_option,
    option,
    option_groups,
    options_from_args,
    positive_int_arg,
)
from fornet.progress import progress_wanted
from fornet.runtime.model_spec import MODEL, ModelSpec
from fornet.runtime.segmenter import Segmenter

#: The model flags ``fornet eval`` takes (``--ckpt`` is another name of ``--model``).
MODEL_FIELDS = ("path", "backend", "device", "precision", "sidecar", "verify_sidecar", "plugin", "input_size",
                "variant", "threads")


@dataclass(frozen=True)
class EvalOptions:
    """Which data to score on and where the results go."""

    data: Path = option(flag="--data", parse=Path, required=True, metavar="DIR",
                        help="Cityscapes root, the folder holding leftImg8bit/ and gtFine/")
    split: str = option("val", flag="--split", help="split to evaluate")
    limit: int | None = option(None, flag="--limit", parse=positive_int_arg, metavar="N",
                               help="evaluate only the first N images")
    save_predictions: Path | None = option(None, flag="--save-predictions", parse=Path, metavar="DIR",
                                           help="write <stem>_pred_labelIds.png for the official evaluator into DIR")
    json: Path | None = json_option("the scores as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags (``--ckpt`` an alias of ``--model``) and :class:`EvalOptions`."""
    groups = option_groups(parser, MODEL)
    add_options(parser, ModelSpec, groups, only=MODEL_FIELDS, aliases={"path": ("--ckpt",)})
    add_options(parser, EvalOptions)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Check the outputs and the data, score the model, print the table and optionally write the JSON."""
    spec = options_from_args(ModelSpec, args)
    options = options_from_args(EvalOptions, args)
    output = CommandOutput(options.json)
    if options.save_predictions is not None:
        check_output_dir(options.save_predictions, "--save-predictions")
    backend = spec.backend_class()
    backend.require_libraries()
    progress = progress_wanted()
    scan_split(options.data, options.split, progress=progress)
    dataset = CityscapesDataset(options.data, options.split, require_labels=True)
    if backend.NAME == "torch":
        from fornet.model.checkpoint import load_model

        device = resolve_device(spec.device)
        model = load_model(spec.path, spec.variant, map_location=device)
        variant = model.checkpoint_info.variant
        result = evaluate(model, dataset, spec.input_size, device, options.save_predictions, progress=progress,
                          limit=options.limit)
        where = f"{format_hw(spec.input_size) if spec.input_size else 'native size'} on {device}"
    else:
        with Segmenter(spec) as segmenter:
            check_class_count(segmenter.io.num_classes)
            variant = segmenter.io.variant
            result = score_predictor(lambda rgb: segmenter(np.ascontiguousarray(rgb[:, :, ::-1])), dataset,
                                     options.save_predictions, progress=progress, limit=options.limit)
            where = f"{format_hw(segmenter.input_size)} on {segmenter.backend.label}"
    output.say(f"{result.n_images} {options.split} images at {where} in {result.seconds:.1f} s")
    output.say(format_iou_table(result.iou, CLASS_NAMES))
    output.say(f"pixel accuracy: {100 * result.pixel_accuracy:.2f}")
    baseline = result.confusion.majority_baseline_miou()
    output.say(f"trivial baseline (most frequent class everywhere): mIoU {100 * baseline:.2f}")
    output.record(result.to_report(model=str(spec.path), variant=variant, data=str(options.data),
                                   split=options.split, input_size=spec.input_size, device=where))
    output.say(f"mIoU: {100 * result.miou:.2f}")
    return 0


COMMAND = Command(
    name="eval",
    alias="fornet-eval",
    summary="mIoU of a checkpoint, ONNX file or plan on a Cityscapes split (official convention)",
    description="Evaluate a FoR-Net model on a Cityscapes split (official mIoU convention: one confusion matrix "
                "over the split, ignored pixels excluded): a checkpoint in PyTorch, an ONNX file or TensorRT plan "
                "through its backend, at the frame's own size.",
    add_arguments=add_arguments,
    run=run,
    epilog="Predictions saved with --save-predictions are labelId PNGs for cityscapesscripts: "
           "CITYSCAPES_DATASET=DATA CITYSCAPES_RESULTS=DIR csEvalPixelLevelSemanticLabeling "
           "(its iIoU step calls np.in1d, which NumPy 2.4 removed: run it with numpy<2.4). "
           "--ckpt is another name of --model.",
)
main = COMMAND.alias_main
