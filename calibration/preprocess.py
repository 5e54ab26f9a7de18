"""The one input preprocessing of fornet-deploy, shared by evaluation, calibration and the CPU runtime.

Steps, in order: optional resize, BGR->RGB if needed, scale to [0, 1], subtract the mean, divide
by the standard deviation, HWC -> CHW. The output is float32.

Resizing uses ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``: OpenCV's bilinear with
half-pixel centres (``align_corners=False``) and **no antialiasing** when shrinking, i.e. the
same sampling as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
antialias=False)`` up to OpenCV's fixed-point rounding of uint8 images. An engine fed by another
resize (PIL, antialiased torchvision) sees slightly different inputs than the calibration did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fornet.calibration.errors import DataError
from fornet.normalization import IMAGENET_MEAN, IMAGENET_STD

CHANNEL_ORDERS = ("RGB", "BGR")


class PreprocessError(DataError):
    """The input image or the preprocessing parameters are invalid."""


class ImageError(DataError):
    """An image or camera frame that is not a non-empty uint8 ``H x W x 3`` array."""


def check_image(image: object, what: str = "image") -> np.ndarray:
    """Return ``image`` if it is a non-empty uint8 ``H x W x 3`` array, else raise :class:`ImageError`.

    The one validator of images (data sets, calibration) and camera frames (the runtime); ``what``
    names the offender in the message (``"frame 3"``).
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{what} is a {type(image).__name__}; pass a numpy uint8 HxWx3 BGR image (a numpy array, "
                         "as cv2.imread or cv2.VideoCapture.read return)")
    if image.dtype != np.uint8:
        raise ImageError(f"{what} has dtype {image.dtype}; pass the uint8 image as captured (0..255), "
                         "before any normalisation or float conversion")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ImageError(f"{what} has one channel (shape {image.shape}); an HxWx3 image is needed: convert it "
                         "with cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ImageError(f"{what} has 4 channels (shape {image.shape}); an HxWx3 image is needed: drop alpha "
                         "with cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{what} has shape {image.shape}; pass an HxWx3 BGR image with channels last")
    return image


def _check_size(size: tuple[int, int] | None) -> None:
    if size is not None and (len(size) != 2 or min(int(size[0]), int(size[1])) <= 0):
        raise PreprocessError(f"size must be (H, W) with positive values, got {size!r}")


def preprocess(image: np.ndarray, size: tuple[int, int] | None = None,
               mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
               channel_order: str = "RGB") -> np.ndarray:
    """Turn one uint8 HxWx3 image into a normalised float32 3xHxW network input.

    Args:
        image: HxWx3 uint8 in ``channel_order``.
        size: ``(H, W)`` to resize to with OpenCV ``INTER_LINEAR`` (half-pixel bilinear, no
            antialias), or None to keep the image size.
        mean, std: per-channel statistics in RGB order for pixel values scaled to [0, 1].
        channel_order: ``"RGB"`` (as :func:`~fornet.calibration.cityscapes.read_image` returns)
            or ``"BGR"`` (as ``cv2.imread`` returns); the output is always RGB.

    Raises:
        PreprocessError: wrong dtype, shape, size, statistics or channel order.
    """
    check_image(image)
    _check_size(size)
    if channel_order not in CHANNEL_ORDERS:
        raise PreprocessError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std_arr = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    if mean_arr.size != 3 or std_arr.size != 3 or np.any(std_arr <= 0):
        raise PreprocessError(f"mean and std need 3 values each and std must be positive, got "
                              f"mean={mean!r} std={std!r}")
    import cv2

    if size is not None and tuple(image.shape[:2]) != (size[0], size[1]):
        image = cv2.resize(image, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    # (v / 255 - mean) / std in float32 for each of the 256 values, then a table lookup per plane: the same
    # float32 operations as on the whole image, so the same bits, in a tenth of the time.
    table = (np.arange(256, dtype=np.float32) / np.float32(255.0) - mean_arr.reshape(3, 1)) / std_arr.reshape(3, 1)
    planes = cv2.split(np.ascontiguousarray(image))
    chw = np.empty((3, *image.shape[:2]), dtype=np.float32)
    for channel in range(3):  # RGB out
        cv2.LUT(planes[2 - channel if channel_order == "BGR" else channel], table[channel], dst=chw[channel])
    return chw


def preprocess_batch(images: Sequence[np.ndarray], size: tuple[int, int] | None = None,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     channel_order: str = "RGB") -> np.ndarray:
    """Preprocess several images into one float32 Nx3xHxW batch (see :func:`preprocess`).

    ``size`` may be None only when all images already share one size.

    Raises:
        PreprocessError: an empty batch, mixed sizes without ``size``, or a bad image.
    """
    if len(images) == 0:
        raise PreprocessError("preprocess_batch got no images; pass at least one")
    if size is None:
        shapes = {tuple(np.shape(im)[:2]) for im in images}
        if len(shapes) > 1:
            raise PreprocessError(f"images have different sizes {sorted(shapes)}; pass size=(H, W) "
                                  "to resize them to one network input size")
    return np.stack([preprocess(im, size, mean, std, channel_order) for im in images])
