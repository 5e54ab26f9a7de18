"""Cityscapes label tables: the 19 training classes, their colours and the labelId <-> trainId maps.

Ground truth files store *labelIds* (0..33); networks are trained on the 19 *trainIds*; every
other labelId is ignored (trainId 255). The official evaluator expects predictions as labelIds.
"""

from __future__ import annotations

import numpy as np

from fornet.calibration.errors import DataError

#: Number of training classes.
NUM_CLASSES = 19
#: trainId of pixels that are excluded from loss and metrics.
IGNORE_INDEX = 255

#: Class names indexed by trainId.
CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)

#: labelId of each trainId (uint8, 19 entries).
TRAIN_TO_LABEL: np.ndarray = np.array(
    [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33], dtype=np.uint8
)

#: Cityscapes colour (RGB) of each trainId (19x3 uint8).
TRAIN_COLORS: np.ndarray = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)

#: Cityscapes colour (RGB) of every labelId, indexed by labelId (256x3 uint8; unused ids black).
#: This is what ``*_gtFine_color.png`` files show; ignored labels have their own void colours.
LABEL_COLORS: np.ndarray = np.zeros((256, 3), dtype=np.uint8)
LABEL_COLORS[TRAIN_TO_LABEL] = TRAIN_COLORS
for _label_id, _rgb in {5: (111, 74, 0), 6: (81, 0, 81), 9: (250, 170, 160), 10: (230, 150, 140),
                        14: (180, 165, 180), 15: (150, 100, 100), 16: (150, 120, 90),
                        18: (153, 153, 153), 29: (0, 0, 90), 30: (0, 0, 110)}.items():
    LABEL_COLORS[_label_id] = _rgb
del _label_id, _rgb

#: labelId -> trainId lookup table (256 entries, uint8); unlisted labelIds map to 255.
LABEL_TO_TRAIN: np.ndarray = np.full(256, IGNORE_INDEX, dtype=np.uint8)
LABEL_TO_TRAIN[TRAIN_TO_LABEL] = np.arange(NUM_CLASSES, dtype=np.uint8)

for _table in (TRAIN_TO_LABEL, TRAIN_COLORS, LABEL_COLORS, LABEL_TO_TRAIN):
    _table.setflags(write=False)
del _table


class LabelError(DataError, ValueError):
    """An id array that cannot be mapped (not integers, or values outside 0..255)."""


def _as_uint8_ids(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "ui":
        raise LabelError(f"{what} must be an integer array, got dtype {a.dtype}; load label PNGs with "
                         "cv2.IMREAD_UNCHANGED and take argmax of logits before mapping")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise LabelError(f"{what} must lie in 0..255, got values {a.min()}..{a.max()}; pass 8-bit ids, "
                         "not instanceIds (labelId*1000+k) or raw logits")
    return a.astype(np.uint8, copy=False)


def label_ids_to_train_ids(a: np.ndarray) -> np.ndarray:
    """Map an array of Cityscapes labelIds to trainIds (uint8; ignored labels become 255)."""
    return LABEL_TO_TRAIN[_as_uint8_ids(a, "labelIds")]


def train_ids_to_label_ids(a: np.ndarray) -> np.ndarray:
    """Map trainIds back to labelIds (uint8) for the official evaluator; 255 (ignore) becomes 0."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[:NUM_CLASSES] = TRAIN_TO_LABEL
    return lut[_as_uint8_ids(a, "trainIds")]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Render trainIds as an HxWx3 uint8 RGB image in the Cityscapes palette (ignore = black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = TRAIN_COLORS
    return lut[_as_uint8_ids(train_ids, "trainIds")]


def class_table(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Class names and RGB colours: Cityscapes' for 19 classes, generic ones otherwise."""
    if num_classes == len(CLASS_NAMES):
        return list(CLASS_NAMES), TRAIN_COLORS.tolist()
    colors = [[(37 * i) % 256, (101 * i + 80) % 256, (173 * i + 160) % 256] for i in range(num_classes)]
    return [f"class_{i}" for i in range(num_classes)], colors
