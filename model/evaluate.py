"""Score a FoR-Net on a Cityscapes split the way the official evaluator does; the ``fornet-eval`` CLI.

Each image is preprocessed by the shared :func:`fornet.calibration.preprocess.preprocess` (at its
own size, or resized to ``input_size``), run through the model in eval mode, its logits are
upsampled bilinearly back to the image size when it was resized, and the argmax is scored against
the full-resolution trainId label with one :class:`~fornet.calibration.metrics.ConfusionMatrix`
accumulated over the whole split. ``save_dir`` writes ``<stem>_pred_labelIds.png`` files that
``cityscapesscripts``' ``evalPixelLevelSemanticLabeling`` accepts (``CITYSCAPES_RESULTS=<save_dir>``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fornet import __version__
from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.calibration.cityscapes import Sample
from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from fornet.calibration.metrics import ConfusionMatrix, format_iou_table, save_label_id_png
from fornet.calibration.preprocess import preprocess
from fornet.cli_utils import friendly_errors, hw_arg
from fornet.model.config import IMAGENET_MEAN, IMAGENET_STD
from fornet.model.errors import ModelError


class EvaluationError(ModelError):
    """An evaluation that cannot run: no images, unlabelled images, wrong class count or device."""


class LabelledImages(Protocol):
    """What :func:`evaluate` reads: e.g. a :class:`~fornet.calibration.cityscapes.CityscapesDataset`."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


@dataclass
class EvalResult:
    """Scores of one evaluation run (IoUs as fractions in [0, 1]).

    Attributes:
        confusion: the 19-class confusion matrix accumulated over every image.
        miou: mean IoU over the classes present in the ground truth or the predictions.
        iou: per-class IoU (NaN for classes absent from both).
        pixel_accuracy: correct / scored pixels.
        n_images: images evaluated.
        seconds: wall time of the loop, including reading images and writing predictions.
    """

    confusion: ConfusionMatrix
    miou: float
    iou: np.ndarray
    pixel_accuracy: float
    n_images: int
    seconds: float

    def to_dict(self, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
        """JSON-ready form: the confusion matrix summary plus image count and time."""
        return {**self.confusion.to_dict(class_names), "n_images": self.n_images,
                "seconds": round(self.seconds, 3)}


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; the model's previous training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _normalisation(model: nn.Module) -> tuple[Sequence[float], Sequence[float]]:
    """Mean and std the model was trained with (from its checkpoint), else ImageNet's."""
    info = getattr(model, "checkpoint_info", None)
    if info is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return info.mean, info.std


def predict_labels(model: nn.Module, image_rgb: np.ndarray, input_size: tuple[int, int] | None = None,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Predict HxW uint8 trainIds for one HxWx3 uint8 RGB image, at the image's own size.

    Args:
        model: a FoR-Net (or any module returning ``logits`` or ``(logits, ...)`` of shape
            1 x C x h x w), already on ``device``; it runs in eval mode without autograd.
        image_rgb: the image as read by :func:`~fornet.calibration.cityscapes.read_image`.
        input_size: ``(H, W)`` the network sees, or None for the image's own size.
        device: where the input tensor is placed.
    """
    mean, std = _normalisation(model)
    x = torch.from_numpy(preprocess(image_rgb, input_size, mean, std)).unsqueeze(0).to(device)
    with _eval_mode(model):
        out = model(x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        size = tuple(image_rgb.shape[:2])
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        return logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()


def evaluate(model: nn.Module, dataset: LabelledImages, input_size: tuple[int, int] | None = None,
             device: str | torch.device = "cpu", save_dir: str | os.PathLike[str] | None = None,
             progress: bool = True, limit: int | None = None) -> EvalResult:
    """mIoU, per-class IoU and pixel accuracy of ``model`` on ``dataset``'s first ``limit`` images.

    Raises:
        EvaluationError: an empty data set, ``limit`` < 1, an unlabelled image, or a model whose
            class count is not 19.
    """
    from tqdm import tqdm

    num_classes = getattr(model, "num_classes", NUM_CLASSES)
    if num_classes != NUM_CLASSES:
        raise EvaluationError(f"the model predicts {num_classes} classes but Cityscapes evaluation "
                              f"scores {NUM_CLASSES}; evaluate a checkpoint trained on the 19 trainIds")
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be at least 1 image, got {limit}; omit it to use every image")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise EvaluationError("the data set has no images to evaluate; check the data folder and split")
    out_dir = ensure_writable_dir(save_dir) if save_dir is not None else None
    confusion = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
    start = time.perf_counter()
    with _eval_mode(model):
        for index in tqdm(range(n), desc="evaluate", unit="img", disable=not progress):
            sample = dataset[index]
            if sample.label is None:
                raise EvaluationError(f"image {sample.name} has no ground truth label; evaluation needs "
                                      "the gtFine labelIds of every image (use the val split)")
            pred = predict_labels(model, sample.image, input_size, device)
            confusion.update(pred, sample.label)
            if out_dir is not None:
                save_label_id_png(out_dir / f"{sample.name}_pred_labelIds.png", pred)
    return EvalResult(confusion=confusion, miou=confusion.miou(), iou=confusion.iou(),
                      pixel_accuracy=confusion.pixel_accuracy(), n_images=n,
                      seconds=time.perf_counter() - start)


def _resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(f"--device {name} was requested but PyTorch sees no CUDA GPU; "
                              "use --device cpu (or auto)")
    return name


def build_parser() -> argparse.ArgumentParser:
    """The ``fornet-eval`` argument parser."""
    from fornet.model.variants import list_variants

    parser = argparse.ArgumentParser(
        prog="fornet-eval",
        description="Evaluate a FoR-Net checkpoint on a Cityscapes split (official mIoU convention: "
                    "one confusion matrix over the split, ignored pixels excluded).",
        epilog="Predictions saved with --save-predictions are labelId PNGs for cityscapesscripts: "
               "CITYSCAPES_DATASET=DATA CITYSCAPES_RESULTS=DIR csEvalPixelLevelSemanticLabeling "
               "(its iIoU step calls np.in1d, which NumPy 2.4 removed: run it with numpy<2.4).",
    )
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint file (.pth)")
    parser.add_argument("--data", required=True, type=Path,
                        help="Cityscapes root, the folder holding leftImg8bit/ and gtFine/")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument("--variant", choices=list_variants(),
                        help="architecture, for bare state_dicts that do not record it")
    parser.add_argument("--input-size", type=hw_arg, metavar="HxW",
                        help="resize images to HxW for the network (default: native size, e.g. 1024x2048)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N images")
    parser.add_argument("--save-predictions", type=Path, metavar="DIR",
                        help="write <stem>_pred_labelIds.png for the official evaluator into DIR")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the scores as JSON to OUT")
    parser.add_argument("--device", default="auto",
                        help="torch device: auto (cuda if available), cpu, cuda, cuda:1 ... (default: auto)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fornet-eval``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from fornet.calibration.cityscapes import CityscapesDataset
    from fornet.model.checkpoint import load_model

    device = _resolve_device(args.device)
    dataset = CityscapesDataset(args.data, args.split, require_labels=True)
    model = load_model(args.ckpt, args.variant, map_location=device)
    result = evaluate(model, dataset, args.input_size, device, args.save_predictions,
                      progress=sys.stderr.isatty(), limit=args.limit)
    size = "native size" if args.input_size is None else "x".join(map(str, args.input_size))
    print(f"{result.n_images} {args.split} images at {size} on {device} in {result.seconds:.1f} s")
    print(format_iou_table(result.iou, CLASS_NAMES))
    print(f"pixel accuracy: {100 * result.pixel_accuracy:.2f}")
    baseline = result.confusion.majority_baseline_miou()
    print(f"trivial baseline (most frequent class everywhere): mIoU {100 * baseline:.2f}")
    if args.json is not None:
        info = model.checkpoint_info
        report = {"checkpoint": str(args.ckpt), "variant": info.variant, "data": str(args.data),
                  "split": args.split, "input_size": list(args.input_size) if args.input_size else None,
                  "device": device, "fornet_version": __version__, **result.to_dict()}
        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    print(f"mIoU: {100 * result.miou:.2f}")
    return 0
