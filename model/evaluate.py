"""Score a FoR-Net on a Cityscapes split the way the official evaluator does (``fornet eval``).

Each image is preprocessed by the shared :func:`fornet.calibration.preprocess.preprocess` (at its
own size, or resized to ``input_size``), run through the model in eval mode, its logits are
upsampled bilinearly back to the image size when it was resized, and the argmax is scored against
the full-resolution trainId label with one :class:`~fornet.calibration.metrics.ConfusionMatrix`
accumulated over the whole split. ``save_dir`` writes ``<stem>_pred_labelIds.png`` files that
``cityscapesscripts``' ``evalPixelLevelSemanticLabeling`` accepts (``CITYSCAPES_RESULTS=<save_dir>``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from tqdm import tqdm

from fornet import __version__
from fornet.atomic import ensure_writable_dir
from fornet.calibration.cityscapes import Sample
from fornet.calibration.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from fornet.calibration.metrics import ConfusionMatrix, ScoreSummary, save_label_id_png
from fornet.calibration.preprocess import preprocess
from fornet.lazy import lazy_import
from fornet.model.config import IMAGENET_MEAN, IMAGENET_STD
from fornet.model.errors import ModelError
from fornet.options import parse_device
from fornet.records import Record

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")  # scoring an exported model (fornet eval --model x.onnx) needs no torch


class EvaluationError(ModelError):
    """An evaluation that cannot run: no images, unlabelled images, wrong class count or device."""


class LabelledImages(Protocol):
    """What :func:`evaluate` reads: e.g. a :class:`~fornet.calibration.cityscapes.CityscapesDataset`."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


@dataclass(frozen=True)
class EvalReport(Record, ScoreSummary):
    """``fornet eval --json``: the scores (:class:`ScoreSummary`'s fields) and what was scored, how and where."""

    FORMAT: ClassVar[str] = "fornet-deploy/eval-report"
    VERSION: ClassVar[int] = 2
    #: Reports written before the format tag have version 1's layout.
    UNTAGGED_VERSION: ClassVar[int | None] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy evaluation report"
    FIX: ClassVar[str] = "run fornet eval again with --json"

    n_images: int
    seconds: float
    model: str
    variant: str | None
    data: str
    split: str
    input_size: tuple[int, int] | None
    device: str
    fornet_version: str

    @classmethod
    def upgrade(cls, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """Version 1 named the scored file ``checkpoint`` (only checkpoints were scored then)."""
        if version != 1:
            return None
        upgraded = dict(body)
        upgraded["model"] = upgraded.pop("checkpoint", None)
        return upgraded


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

    def to_report(self, *, model: str, variant: str | None, data: str, split: str,
                  input_size: tuple[int, int] | None, device: str,
                  class_names: Sequence[str] = CLASS_NAMES) -> EvalReport:
        """The scores with what was scored (model file, variant, data, split, input size, device)."""
        return EvalReport(**vars(self.confusion.to_record(class_names)), n_images=self.n_images,
                          seconds=round(self.seconds, 3), model=model, variant=variant, data=data,
                          split=split, input_size=input_size, device=device, fornet_version=__version__)


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
            logits = torch.nn.functional.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        return logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()


#: ``predict(image_rgb)``: uint8 trainIds at the size of a uint8 RGB image.
Predictor = Callable[[np.ndarray], np.ndarray]


def score_predictor(predict: Predictor, dataset: LabelledImages, save_dir: str | os.PathLike[str] | None = None,
                    progress: bool = True, limit: int | None = None) -> EvalResult:
    """mIoU, per-class IoU and pixel accuracy of ``predict`` on ``dataset``'s first ``limit`` images.

    The one scoring loop of :func:`evaluate` and of exported models (``fornet eval --model fornet.onnx``).

    Raises:
        EvaluationError: an empty data set, ``limit`` < 1 or an unlabelled image.
    """
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be at least 1 image, got {limit}; omit it to use every image")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise EvaluationError("the data set has no images to evaluate; check the data folder and split")
    out_dir = ensure_writable_dir(save_dir) if save_dir is not None else None
    confusion = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
    start = time.perf_counter()
    for index in tqdm(range(n), desc="evaluate", unit="img", disable=not progress):
        sample = dataset[index]
        if sample.label is None:
            raise EvaluationError(f"image {sample.name} has no ground truth label; evaluation needs "
                                  "the gtFine labelIds of every image (use the val split)")
        pred = predict(sample.image)
        confusion.update(pred, sample.label)
        if out_dir is not None:
            save_label_id_png(out_dir / f"{sample.name}_pred_labelIds.png", pred)
    return EvalResult(confusion=confusion, miou=confusion.miou(), iou=confusion.iou(),
                      pixel_accuracy=confusion.pixel_accuracy(), n_images=n,
                      seconds=time.perf_counter() - start)


def check_class_count(num_classes: int) -> None:
    """Refuse a model whose class count is not Cityscapes' 19 trainIds."""
    if num_classes != NUM_CLASSES:
        raise EvaluationError(f"the model predicts {num_classes} classes but Cityscapes evaluation "
                              f"scores {NUM_CLASSES}; evaluate a model trained on the 19 trainIds")


def evaluate(model: nn.Module, dataset: LabelledImages, input_size: tuple[int, int] | None = None,
             device: str | torch.device = "cpu", save_dir: str | os.PathLike[str] | None = None,
             progress: bool = True, limit: int | None = None) -> EvalResult:
    """mIoU, per-class IoU and pixel accuracy of ``model`` on ``dataset``'s first ``limit`` images.

    Raises:
        EvaluationError: an empty data set, ``limit`` < 1, an unlabelled image, or a model whose
            class count is not 19.
    """
    check_class_count(getattr(model, "num_classes", NUM_CLASSES))
    with _eval_mode(model):
        return score_predictor(lambda image: predict_labels(model, image, input_size, device), dataset, save_dir,
                               progress, limit)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda:0`` when PyTorch sees a GPU, else ``cpu``; other devices are checked and returned."""
    name = parse_device(name)
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(f"--device {name} was requested but PyTorch sees no CUDA GPU; "
                              "use --device cpu (or auto)")
    return name
