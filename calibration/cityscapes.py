"""Read a Cityscapes data set (real or generated) in the official folder layout.

Layout::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Images are returned as HxWx3 uint8 RGB, labels as HxW uint8 *trainIds* (255 = ignore).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from fornet.calibration.errors import DataError
from fornet.calibration.labels import LABEL_TO_TRAIN, label_ids_to_train_ids

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
#: Largest labelId of Cityscapes (bicycle); labelIds PNGs hold 0..33.
MAX_LABEL_ID = 33

#: ``transform(image, label) -> (image, label)``; ``label`` is None for unlabelled images.
Transform = Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]


class DatasetError(DataError):
    """The data set folder is missing, incomplete or holds unreadable files."""


class Sample(NamedTuple):
    """One image with its label.

    Attributes:
        image: HxWx3 uint8 RGB.
        label: HxW uint8 trainIds (255 = ignore), or None for an unlabelled image.
        name: the ``<city>_<seq>_<frame>`` stem shared by image and label files.
    """

    image: np.ndarray
    label: np.ndarray | None
    name: str


def _layout_hint(root: Path) -> str:
    return (f"expected {root}/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX} "
            f"(and gtFine/<split>/<city>/..{LABEL_SUFFIX}); point --data/--root at the folder "
            "that contains leftImg8bit/, or generate one with `fornet-data synth --out DIR`")


def available_splits(root: str | os.PathLike[str]) -> list[str]:
    """Names of the non-empty splits under ``<root>/leftImg8bit`` (sorted)."""
    images = Path(root) / "leftImg8bit"
    if not images.is_dir():
        return []
    return sorted(d.name for d in images.iterdir()
                  if d.is_dir() and next(d.glob(f"*/*{IMAGE_SUFFIX}"), None) is not None)


def find_split_images(root: str | os.PathLike[str], split: str) -> list[Path]:
    """All ``*_leftImg8bit.png`` files of ``split``, sorted by stem.

    Raises:
        DatasetError: the root lacks ``leftImg8bit/`` or the split is missing or empty.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data set root {root} does not exist; {_layout_hint(root)}")
    if not (root / "leftImg8bit").is_dir():
        raise DatasetError(f"{root} has no leftImg8bit/ folder; {_layout_hint(root)}")
    paths = sorted((root / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}"), key=lambda p: p.name)
    if not paths:
        found = available_splits(root)
        have = ", ".join(found) if found else "none"
        raise DatasetError(f"split {split!r} has no images under {root / 'leftImg8bit' / split}; "
                           f"splits with images: {have}; pass one of those")
    return paths


def stem_of(image_path: Path) -> str:
    """The ``<city>_<seq>_<frame>`` stem of an image path."""
    return image_path.name[: -len(IMAGE_SUFFIX)]


def label_path_for(root: Path, split: str, image_path: Path) -> Path:
    """Where the labelIds PNG of ``image_path`` lives in the official layout."""
    return root / "gtFine" / split / image_path.parent.name / f"{stem_of(image_path)}{LABEL_SUFFIX}"


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a colour image as HxWx3 uint8 RGB (via OpenCV).

    Raises:
        DatasetError: the file is missing, corrupt or not 8-bit.
    """
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None or bgr.dtype != np.uint8:
        raise DatasetError(f"cannot read image {path} (missing, corrupt or not an 8-bit image); "
                           "re-download or regenerate it, or remove it from the split")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label_ids(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a single-channel 8-bit labelIds PNG unchanged as HxW uint8.

    Raises:
        DatasetError: the file is missing, corrupt, multi-channel or not 8-bit.
    """
    import cv2

    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise DatasetError(f"cannot read label {path} (missing or corrupt PNG); "
                           "re-download or regenerate it")
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise DatasetError(f"label {path} must be a single-channel 8-bit labelIds PNG, got shape "
                           f"{ids.shape} dtype {ids.dtype}; use the *{LABEL_SUFFIX} files, "
                           "not *_gtFine_color.png or *_instanceIds.png")
    return ids


def _check_same_size(label_path: Path, label: np.ndarray, image: np.ndarray) -> None:
    if label.shape != image.shape[:2]:
        raise DatasetError(f"label {label_path} is {label.shape[1]}x{label.shape[0]} but its image is "
                           f"{image.shape[1]}x{image.shape[0]}; image and label must have the same size, "
                           "re-download or regenerate the pair")


class CityscapesDataset:
    """Images (and trainId labels) of one split, sorted by stem.

    Args:
        root: folder that contains ``leftImg8bit/`` (and ``gtFine/``).
        split: ``"train"``, ``"val"``, ``"test"`` or any other folder name.
        transform: optional ``transform(image, label) -> (image, label)`` applied per sample.
        require_labels: if True every image must have its ``gtFine`` labelIds PNG; if False,
            images without one are allowed and their ``label`` is None (test split, calibration).

    Attributes:
        root, split: as given (``root`` as a Path).
        names: the ``<city>_<seq>_<frame>`` stems.
        image_paths: the image files.
        label_paths: the label files (None where an image has none and labels are optional).

    Raises:
        DatasetError: bad root or split, or a missing label while ``require_labels`` is True.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "val",
                 transform: Transform | None = None, require_labels: bool = True) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.image_paths = find_split_images(self.root, split)
        self.names = [stem_of(p) for p in self.image_paths]
        self.label_paths: list[Path | None] = []
        missing: list[str] = []
        for image_path in self.image_paths:
            label = label_path_for(self.root, split, image_path)
            if label.is_file():
                self.label_paths.append(label)
            else:
                self.label_paths.append(None)
                missing.append(str(label))
        if require_labels and missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DatasetError(f"{len(missing)} of {len(self.image_paths)} {split} images have no label: "
                               f"{missing[0]} is missing{more}; add the gtFine/{split}/ labels "
                               "(*_gtFine_labelIds.png, one per image) or choose a labelled split")

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image = read_image(self.image_paths[index])
        label_path = self.label_paths[index]
        label = None
        if label_path is not None:
            label = label_ids_to_train_ids(read_label_ids(label_path))
            _check_same_size(label_path, label, image)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return Sample(image, label, self.names[index])

    def __repr__(self) -> str:
        return f"CityscapesDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


@dataclass(frozen=True)
class SplitStats:
    """What :func:`scan_split` found in one split.

    Attributes:
        images: number of images.
        labelled: how many of them have a labelIds PNG.
        cities: city folder names.
        label_pixels: pixel count per labelId (256 entries) over the labelled images.
        train_pixels: pixel count per trainId (256 entries; index 255 = ignored).
        train_images: number of labelled images that contain each trainId (256 entries).
    """

    images: int
    labelled: int
    cities: tuple[str, ...]
    label_pixels: np.ndarray
    train_pixels: np.ndarray
    train_images: np.ndarray


def scan_split(root: str | os.PathLike[str], split: str, progress: bool = False,
               require_labels: bool = True) -> SplitStats:
    """Read every image and label of a split, validate them and count class pixels.

    The one up-front check of a data set: ``fornet data check``, training (both splits) and
    evaluation run it before any work, so a bad file is found at once, not hours into a run.

    Raises:
        DatasetError: bad layout, a missing label (when ``require_labels``), unreadable files,
            image/label size mismatches, or labelIds outside Cityscapes' 0..33 (e.g. a trainId or
            colour PNG saved under the labelIds name).
    """
    dataset = CityscapesDataset(root, split, require_labels=require_labels)
    label_pixels = np.zeros(256, np.int64)
    train_images = np.zeros(256, np.int64)
    pairs = list(zip(dataset.image_paths, dataset.label_paths, strict=True))
    for image_path, label_path in tqdm(pairs, desc=f"checking {split}", unit="img", disable=not progress):
        image = read_image(image_path)
        if label_path is None:
            continue
        ids = read_label_ids(label_path)
        _check_same_size(label_path, ids, image)
        counts = np.bincount(ids.ravel(), minlength=256)
        if counts[MAX_LABEL_ID + 1:].any():
            bad = np.flatnonzero(counts[MAX_LABEL_ID + 1:]) + MAX_LABEL_ID + 1
            raise DatasetError(f"label {label_path} holds values {bad.tolist()} outside the Cityscapes labelIds "
                               f"0..{MAX_LABEL_ID}; the *{LABEL_SUFFIX} files must hold labelIds (convert "
                               "trainIds with fornet.calibration.labels.train_ids_to_label_ids)")
        label_pixels += counts
        present = np.zeros(256, bool)
        present[LABEL_TO_TRAIN[np.flatnonzero(counts)]] = True
        train_images += present
    train_pixels = np.bincount(LABEL_TO_TRAIN, weights=label_pixels, minlength=256).astype(np.int64)
    return SplitStats(
        images=len(dataset), labelled=sum(p is not None for p in dataset.label_paths),
        cities=tuple(sorted({p.parent.name for p in dataset.image_paths})),
        label_pixels=label_pixels, train_pixels=train_pixels, train_images=train_images,
    )
