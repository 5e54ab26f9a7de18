"""Training augmentation for segmentation (NumPy/OpenCV, seeded).

The standard Cityscapes recipe: random scale, pad to the crop size, random crop, random
horizontal flip. Image and label get the same geometry; the image is resampled bilinearly and the
label with nearest neighbour, so label values are never mixed.
"""

from __future__ import annotations

import numpy as np

from fornet.calibration.errors import DataError
from fornet.calibration.labels import IGNORE_INDEX


class AugmentError(DataError):
    """Bad augmentation parameters or an image/label pair that does not match."""


class TrainAugment:
    """Random scale, pad, crop and horizontal flip of an ``(image, label)`` pair.

    Args:
        crop: output ``(H, W)``.
        scale: range of the random scale factor, sampled uniformly.
        flip: flip horizontally with probability 0.5.
        seed: seed of the augmentation's own ``np.random.Generator`` (None: fresh entropy).

    Scaling uses OpenCV: ``INTER_LINEAR`` for the image and ``INTER_NEAREST_EXACT`` (nearest
    neighbour with the same half-pixel centres as the bilinear resize, so the two stay aligned)
    for the label. Images smaller than the crop are padded at the bottom and right with 0 (image)
    and 255 (label, ignored by the loss).

    With a PyTorch ``DataLoader`` call :meth:`reseed` in ``worker_init_fn`` (e.g. with
    ``torch.initial_seed() % 2**32``) so that workers draw distinct streams.
    """

    def __init__(self, crop: tuple[int, int], scale: tuple[float, float] = (0.5, 2.0), flip: bool = True,
                 seed: int | None = None) -> None:
        if len(crop) != 2 or min(crop) <= 0:
            raise AugmentError(f"crop must be (H, W) with positive values, got {crop!r}")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise AugmentError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
        self.crop = (int(crop[0]), int(crop[1]))
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip = flip
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream from ``seed`` (use a distinct seed per DataLoader worker)."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment one pair; ``label`` may be None (unlabelled image). Returns contiguous arrays."""
        import cv2

        if image.ndim != 3 or image.shape[2] != 3:
            raise AugmentError(f"expected an HxWx3 image, got shape {image.shape}")
        if label is not None and label.shape != image.shape[:2]:
            raise AugmentError(f"label shape {label.shape} does not match image shape {image.shape[:2]}; "
                               "pass the label that belongs to this image")
        h, w = image.shape[:2]
        factor = self.rng.uniform(*self.scale)
        size = (max(1, round(w * factor)), max(1, round(h * factor)))  # OpenCV wants (W, H)
        if size != (w, h):
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            if label is not None:
                label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST_EXACT)
        ch, cw = self.crop
        h, w = image.shape[:2]
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0)
            if label is not None:
                label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
            h, w = image.shape[:2]
        y0 = int(self.rng.integers(0, h - ch + 1))
        x0 = int(self.rng.integers(0, w - cw + 1))
        step = -1 if self.flip and self.rng.random() < 0.5 else 1
        image = np.ascontiguousarray(image[y0:y0 + ch, x0:x0 + cw][:, ::step])
        if label is not None:
            label = np.ascontiguousarray(label[y0:y0 + ch, x0:x0 + cw][:, ::step])
        return image, label

    def __repr__(self) -> str:
        return f"TrainAugment(crop={self.crop}, scale={self.scale}, flip={self.flip})"
