"""preprocess / preprocess_batch against hand computations and PyTorch's bilinear resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fornet.calibration.preprocess import preprocess, preprocess_batch
from fornet.errors import FornetError

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_normalisation_by_hand() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (255, 0, 128)
    out = preprocess(image)
    assert out.dtype == np.float32 and out.shape == (3, 2, 3) and out.flags.c_contiguous
    expected = (np.array([1.0, 0.0, 128 / 255]) - MEAN) / STD
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1, 2], -MEAN / STD, rtol=1e-6)


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_the_table_lookup_gives_the_bits_of_whole_image_float32_arithmetic(order: str) -> None:
    """The per-value table must equal (x / 255 - mean) / std computed over the image in float32, bit for bit
    (the GPU pre kernel and the exported graphs are checked against these values); strided input too."""
    image = _random_image(37, 53, seed=4)
    strided = np.ascontiguousarray(np.concatenate([image, image], axis=1))[:, ::2]
    for source in (image, strided):
        rgb = source if order == "RGB" else source[:, :, ::-1]
        chw = rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        expected = (chw - MEAN.astype(np.float32).reshape(3, 1, 1)) / STD.astype(np.float32).reshape(3, 1, 1)
        np.testing.assert_array_equal(preprocess(source, channel_order=order), expected)


def test_bgr_input_matches_rgb() -> None:
    rgb = _random_image(5, 7)
    np.testing.assert_array_equal(preprocess(rgb[:, :, ::-1].copy(), channel_order="BGR"), preprocess(rgb))


def test_custom_statistics() -> None:
    image = _random_image(3, 4)
    out = preprocess(image, mean=(0, 0, 0), std=(1, 1, 1))
    np.testing.assert_allclose(out, image.transpose(2, 0, 1) / 255.0, rtol=1e-6)


@pytest.mark.parametrize("size", [(24, 40), (6, 10), (13, 17)])
def test_resize_is_half_pixel_bilinear_without_antialias(size: tuple[int, int]) -> None:
    image = _random_image(12, 20, seed=1)
    out = preprocess(image, size=size, mean=(0, 0, 0), std=(1, 1, 1))
    ref = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].double(), size=size,
                        mode="bilinear", align_corners=False, antialias=False)[0].numpy() / 255.0
    assert out.shape == (3, *size)
    # OpenCV rounds the resized uint8 image (and uses fixed-point weights): within ~1 grey level
    np.testing.assert_allclose(out, ref, atol=1.01 / 255)


def test_resize_to_same_size_is_a_no_op() -> None:
    image = _random_image(6, 8)
    np.testing.assert_array_equal(preprocess(image, size=(6, 8)), preprocess(image))


def test_batch_stacks_single_results() -> None:
    images = [_random_image(8, 12, seed=s) for s in range(3)]
    batch = preprocess_batch(images)
    assert batch.shape == (3, 3, 8, 12) and batch.dtype == np.float32
    for k, image in enumerate(images):
        np.testing.assert_array_equal(batch[k], preprocess(image))


def test_batch_of_mixed_sizes_needs_size() -> None:
    images = [_random_image(8, 12), _random_image(10, 10)]
    with pytest.raises(FornetError, match=r"different sizes.*size=\(H, W\)"):
        preprocess_batch(images)
    assert preprocess_batch(images, size=(4, 6)).shape == (2, 3, 4, 6)
    with pytest.raises(FornetError, match="no images"):
        preprocess_batch([])


@pytest.mark.parametrize(("image", "match"), [
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((4, 4), np.uint8), "HxWx3"),
    (np.zeros((4, 4, 4), np.uint8), "HxWx3"),
    (np.zeros((0, 4, 3), np.uint8), "HxWx3"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_images(image: np.ndarray, match: str) -> None:
    with pytest.raises(FornetError, match=match):
        preprocess(image)


def test_bad_parameters() -> None:
    image = _random_image(4, 4)
    with pytest.raises(FornetError, match="channel_order"):
        preprocess(image, channel_order="RGBA")
    with pytest.raises(FornetError, match="size must be"):
        preprocess(image, size=(0, 4))
    with pytest.raises(FornetError, match="std must be positive"):
        preprocess(image, std=(0.2, 0.0, 0.2))
