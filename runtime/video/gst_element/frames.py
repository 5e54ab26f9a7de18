"""Raw video frames of ``fornetseg`` as numpy arrays: BGR, BGRx, RGBA and NV12 read as BGR, BGR written back.

Pure numpy (no GStreamer): the element describes each buffer's memory as a :class:`FrameLayout` (from its
caps and its video meta) and :func:`to_bgr` / :func:`write_bgr` read and write it. NV12 is converted with
the caps' colour matrix (``Kr``/``Kb``: BT.601, BT.709, ...) and range, as ``videoconvert`` does, with
the chroma of each 2x2 block shared by its four pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bytes per pixel of the packed RGB formats the element takes.
PACKED_FORMATS = {"BGR": 3, "BGRx": 4, "RGBA": 4}
#: Every raw format the element takes.
FORMATS = (*PACKED_FORMATS, "NV12")


@dataclass(frozen=True)
class FrameLayout:
    """Where a frame's planes lie in its buffer.

    Attributes:
        format: a GStreamer format name of :data:`FORMATS`.
        width: pixels per row.
        height: rows.
        strides: bytes per row of each plane.
        offsets: byte offset of each plane.
        kr: the colour matrix's red weight (NV12).
        kb: the colour matrix's blue weight (NV12).
        full_range: NV12 samples span 0..255 (else 16..235 / 16..240).
    """

    format: str
    width: int
    height: int
    strides: tuple[int, ...]
    offsets: tuple[int, ...]
    kr: float = 0.299
    kb: float = 0.114
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")

    @property
    def size(self) -> int:
        """Bytes a buffer of this layout holds at least."""
        if self.format == "NV12":
            return self.offsets[1] + self.strides[1] * _half(self.height)
        return self.offsets[0] + self.strides[0] * self.height


def _half(n: int) -> int:
    return (n + 1) // 2


def _plane(data: np.ndarray, layout: FrameLayout, index: int, rows: int, row_bytes: int) -> np.ndarray:
    stride, offset = layout.strides[index], layout.offsets[index]
    return data[offset:offset + stride * rows].reshape(rows, stride)[:, :row_bytes]


def to_bgr(data: np.ndarray | bytes | memoryview, layout: FrameLayout) -> np.ndarray:
    """The frame in ``data`` (a buffer's bytes) as a new ``H x W x 3`` uint8 BGR array."""
    flat = np.frombuffer(data, dtype=np.uint8)
    if flat.size < layout.size:
        raise ValueError(f"a {layout.width}x{layout.height} {layout.format} frame needs {layout.size} bytes, the "
                         f"buffer has {flat.size}")
    h, w = layout.height, layout.width
    if layout.format in PACKED_FORMATS:
        bpp = PACKED_FORMATS[layout.format]
        pixels = _plane(flat, layout, 0, h, w * bpp).reshape(h, w, bpp)
        return np.ascontiguousarray(pixels[:, :, 2::-1] if layout.format == "RGBA" else pixels[:, :, :3])
    luma = _plane(flat, layout, 0, h, w).astype(np.float32)
    chroma = _plane(flat, layout, 1, _half(h), 2 * _half(w)).reshape(_half(h), _half(w), 2).astype(np.float32)
    chroma = chroma.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
    return _yuv_to_bgr(luma, chroma[..., 0], chroma[..., 1], layout)


def write_bgr(data: np.ndarray | memoryview, bgr: np.ndarray, layout: FrameLayout) -> None:
    """Write the ``H x W x 3`` uint8 ``bgr`` into the frame in ``data`` (a writable buffer's bytes), in place.

    The rows' padding and the fourth channel of BGRx/RGBA keep what they held."""
    flat = np.frombuffer(data, dtype=np.uint8)
    h, w = layout.height, layout.width
    if bgr.shape != (h, w, 3):
        raise ValueError(f"a {w}x{h} frame cannot take a {bgr.shape} image")
    if layout.format in PACKED_FORMATS:
        bpp = PACKED_FORMATS[layout.format]
        pixels = _plane(flat, layout, 0, h, w * bpp).reshape(h, w, bpp)
        pixels[:, :, :3] = bgr[:, :, ::-1] if layout.format == "RGBA" else bgr
        return
    y, u, v = _bgr_to_yuv(bgr, layout)
    _plane(flat, layout, 0, h, w)[:] = y
    _plane(flat, layout, 1, _half(h), 2 * _half(w)).reshape(_half(h), _half(w), 2)[:] = np.stack([u, v], axis=-1)


def _scales(layout: FrameLayout) -> tuple[float, float, float]:
    """(luma offset, luma scale, chroma scale) from 8-bit samples to 0..255 / -127.5..127.5."""
    return (0.0, 1.0, 1.0) if layout.full_range else (16.0, 255.0 / 219.0, 255.0 / 224.0)


def _yuv_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray, layout: FrameLayout) -> np.ndarray:
    offset, luma_scale, chroma_scale = _scales(layout)
    kr, kb = layout.kr, layout.kb
    luma = (y - offset) * luma_scale
    cb, cr = (u - 128.0) * chroma_scale, (v - 128.0) * chroma_scale
    r = luma + 2.0 * (1.0 - kr) * cr
    b = luma + 2.0 * (1.0 - kb) * cb
    g = (luma - kr * r - kb * b) / (1.0 - kr - kb)
    return np.clip(np.rint(np.stack([b, g, r], axis=-1)), 0, 255).astype(np.uint8)


def _bgr_to_yuv(bgr: np.ndarray, layout: FrameLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y plane and the 2x2-averaged U and V planes of ``bgr``, as uint8."""
    offset, luma_scale, chroma_scale = _scales(layout)
    kr, kb = layout.kr, layout.kb
    b, g, r = (bgr[..., i].astype(np.float32) for i in range(3))
    luma = kr * r + (1.0 - kr - kb) * g + kb * b
    cb, cr = (b - luma) / (2.0 * (1.0 - kb)), (r - luma) / (2.0 * (1.0 - kr))
    h, w = luma.shape
    pad = ((0, h % 2), (0, w % 2))

    def block_mean(plane: np.ndarray) -> np.ndarray:
        even = np.pad(plane, pad, mode="edge")
        return even.reshape(_half(h), 2, _half(w), 2).mean(axis=(1, 3))

    def to_u8(plane: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(plane), 0, 255).astype(np.uint8)

    return (to_u8(luma / luma_scale + offset), to_u8(block_mean(cb) / chroma_scale + 128.0),
            to_u8(block_mean(cr) / chroma_scale + 128.0))


def labels_layout(width: int, height: int) -> tuple[int, int]:
    """(stride, size) of a GRAY8 label map as GStreamer lays it out (rows padded to 4 bytes)."""
    stride = (width + 3) // 4 * 4
    return stride, stride * height


def pack_labels(labels: np.ndarray) -> bytes:
    """An ``H x W`` uint8 label map as the bytes of a GRAY8 buffer (rows padded to 4 bytes)."""
    height, width = labels.shape
    stride, _ = labels_layout(width, height)
    out = np.zeros((height, stride), dtype=np.uint8)
    out[:, :width] = labels
    return out.tobytes()


def unpack_labels(data: np.ndarray | bytes | memoryview, width: int, height: int) -> np.ndarray:
    """The ``H x W`` label map of a GRAY8 buffer's bytes."""
    stride, size = labels_layout(width, height)
    return np.frombuffer(data, dtype=np.uint8)[:size].reshape(height, stride)[:, :width].copy()
