"""TrainAugment: shapes, padding, image/label alignment, determinism and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fornet.calibration.transforms import TrainAugment
from fornet.errors import FornetError

PALETTE = np.random.default_rng(7).integers(0, 256, (40, 3), dtype=np.uint8)


def _block_pair(h: int = 96, w: int = 160, block: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An image of constant-colour blocks and a label that is each block's palette index."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, len(PALETTE), (h // block + 1, w // block + 1))
    label = np.kron(grid, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)
    return PALETTE[label], label


def _interior(label: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose (2r+1)x(2r+1) neighbourhood holds one label value (not ignore)."""
    h, w = label.shape
    pad = np.pad(label.astype(np.int32), radius, constant_values=-1)
    same = np.ones_like(label, bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            same &= pad[dy:dy + h, dx:dx + w] == label
    return same & (label != 255)


def test_output_shape_and_contiguity() -> None:
    image, label = _block_pair()
    aug = TrainAugment((64, 80), seed=0)
    for _ in range(10):
        out_image, out_label = aug(image, label)
        assert out_image.shape == (64, 80, 3) and out_image.dtype == np.uint8
        assert out_label.shape == (64, 80) and out_label.dtype == np.uint8
        assert out_image.flags.c_contiguous and out_label.flags.c_contiguous


def test_label_and_image_stay_aligned() -> None:
    image, label = _block_pair()
    aug = TrainAugment((80, 120), scale=(0.5, 2.0), seed=3)
    checked = 0
    for _ in range(20):
        out_image, out_label = aug(image, label)
        assert set(np.unique(out_label)) <= set(np.unique(label)) | {255}  # nearest: no mixed values
        inside = _interior(out_label)
        np.testing.assert_array_equal(out_image[inside], PALETTE[out_label[inside]])
        checked += int(inside.sum())
    assert checked > 20 * 80 * 120 // 3


def test_exact_upscale_and_flip() -> None:
    image, label = _block_pair(8, 10, block=3)
    flipped = seen = 0
    aug = TrainAugment((16, 20), scale=(2.0, 2.0), flip=True, seed=0)
    for _ in range(40):
        out_image, out_label = aug(image, label)
        up = np.repeat(np.repeat(label, 2, axis=0), 2, axis=1)
        if (out_label == up).all():
            seen += 1
        else:
            np.testing.assert_array_equal(out_label, up[:, ::-1])
            flipped += 1
        inside = _interior(out_label, 1)
        np.testing.assert_array_equal(out_image[inside], PALETTE[out_label[inside]])
    assert 10 <= flipped <= 30 and seen + flipped == 40


def test_identity_without_scale_and_flip() -> None:
    image, label = _block_pair(32, 48)
    out_image, out_label = TrainAugment((32, 48), scale=(1.0, 1.0), flip=False, seed=0)(image, label)
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_label, label)


def test_small_images_are_padded_with_ignore() -> None:
    image, label = _block_pair(20, 30)
    out_image, out_label = TrainAugment((40, 50), scale=(1.0, 1.0), flip=False, seed=0)(image, label)
    np.testing.assert_array_equal(out_image[:20, :30], image)
    np.testing.assert_array_equal(out_label[:20, :30], label)
    assert (out_label[20:] == 255).all() and (out_label[:, 30:] == 255).all()
    assert (out_image[20:] == 0).all() and (out_image[:, 30:] == 0).all()


def test_scale_range_is_used() -> None:
    image, label = _block_pair(64, 64, block=64)  # one block: scale shows in the padding
    aug = TrainAugment((128, 128), scale=(0.5, 1.5), flip=False, seed=1)
    sides = [int((aug(image, label)[1] != 255).sum(axis=1).max()) for _ in range(30)]
    assert min(sides) >= 32 and max(sides) <= 96
    assert max(sides) - min(sides) > 30


def test_seed_and_reseed_are_deterministic() -> None:
    image, label = _block_pair()
    a, b = TrainAugment((48, 48), seed=5), TrainAugment((48, 48), seed=5)
    first = [a(image, label)[1] for _ in range(3)]
    for expected in first:
        np.testing.assert_array_equal(b(image, label)[1], expected)
    a.reseed(5)
    np.testing.assert_array_equal(a(image, label)[1], first[0])
    a.reseed(6)
    b.reseed(7)
    assert any(not np.array_equal(a(image, label)[1], b(image, label)[1]) for _ in range(3))


def test_unlabelled_image() -> None:
    image, _ = _block_pair()
    out_image, out_label = TrainAugment((40, 40), seed=0)(image, None)
    assert out_image.shape == (40, 40, 3) and out_label is None


def test_bad_arguments() -> None:
    image, label = _block_pair()
    with pytest.raises(FornetError, match="crop"):
        TrainAugment((0, 10))
    with pytest.raises(FornetError, match="scale"):
        TrainAugment((10, 10), scale=(2.0, 1.0))
    with pytest.raises(FornetError, match="does not match"):
        TrainAugment((10, 10))(image, label[:-1])
    with pytest.raises(FornetError, match="HxWx3"):
        TrainAugment((10, 10))(label, label)
