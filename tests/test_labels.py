"""The label tables against cityscapesscripts (an independent copy of the official table)."""

from __future__ import annotations

import numpy as np
import pytest
from cityscapesscripts.helpers import labels as official

from fornet.calibration import labels
from fornet.errors import FornetError

OFFICIAL = [lab for lab in official.labels if 0 <= lab.id <= 255]
TRAIN = sorted((lab for lab in OFFICIAL if 0 <= lab.trainId < 255), key=lambda lab: lab.trainId)


def test_constants() -> None:
    assert labels.NUM_CLASSES == 19 == len(TRAIN)
    assert labels.IGNORE_INDEX == 255


def test_train_tables_match_official() -> None:
    assert tuple(lab.name for lab in TRAIN) == labels.CLASS_NAMES
    assert labels.TRAIN_TO_LABEL.dtype == np.uint8
    assert labels.TRAIN_TO_LABEL.tolist() == [lab.id for lab in TRAIN]
    assert labels.TRAIN_COLORS.dtype == np.uint8 and labels.TRAIN_COLORS.shape == (19, 3)
    assert [tuple(c) for c in labels.TRAIN_COLORS.tolist()] == [lab.color for lab in TRAIN]


def test_label_to_train_matches_official() -> None:
    lut = labels.LABEL_TO_TRAIN
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    expected = np.full(256, 255)
    for lab in OFFICIAL:
        expected[lab.id] = lab.trainId if 0 <= lab.trainId < 255 else 255
    np.testing.assert_array_equal(lut, expected)
    assert (lut != 255).sum() == 19


def test_label_colors_match_official() -> None:
    for lab in OFFICIAL:
        assert tuple(labels.LABEL_COLORS[lab.id].tolist()) == lab.color, lab.name
    assert not labels.LABEL_COLORS[34:].any()


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        labels.LABEL_TO_TRAIN[7] = 3


def test_label_ids_to_train_ids() -> None:
    ids = np.array([[7, 8, 0, 1], [26, 33, 34, 255]], dtype=np.uint8)
    out = labels.label_ids_to_train_ids(ids)
    assert out.dtype == np.uint8 and out.shape == ids.shape
    np.testing.assert_array_equal(out, [[0, 1, 255, 255], [13, 18, 255, 255]])
    # other integer dtypes are accepted (e.g. int64 from a model's argmax)
    np.testing.assert_array_equal(labels.label_ids_to_train_ids(ids.astype(np.int64)), out)


def test_train_ids_to_label_ids_round_trip() -> None:
    train = np.array([[0, 1, 2, 18], [13, 255, 16, 10]], dtype=np.uint8)
    out = labels.train_ids_to_label_ids(train)
    np.testing.assert_array_equal(out, [[7, 8, 11, 33], [26, 0, 31, 23]])
    valid = train != 255
    np.testing.assert_array_equal(labels.label_ids_to_train_ids(out)[valid], train[valid])


def test_colorize() -> None:
    train = np.array([[0, 255], [13, 18]], dtype=np.uint8)
    rgb = labels.colorize(train)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == list(official.trainId2label[0].color)
    assert rgb[0, 1].tolist() == [0, 0, 0]
    assert rgb[1, 0].tolist() == list(official.trainId2label[13].color)
    assert rgb[1, 1].tolist() == list(official.trainId2label[18].color)


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.float32), np.array([[-1, 3]]), np.array([[26001]])])
def test_bad_ids_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(FornetError, match="labelIds must"):
        labels.label_ids_to_train_ids(bad)
    with pytest.raises(FornetError):
        labels.colorize(bad)
