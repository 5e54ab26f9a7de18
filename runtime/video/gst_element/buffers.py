"""Frames in and out of ``Gst.Buffer``: read one as BGR, draw BGR into one, wrap BGR as one (for an appsrc).

For the ``fornetseg`` element and for applications that hand GStreamer frames to ``Segmenter``
(examples/gst_embed.py); the layouts themselves are :mod:`~fornet.runtime.video.gst_element.frames`.
"""
# ruff: noqa: TID253
# (a GStreamer element: GStreamer is its job)

from __future__ import annotations

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
import numpy as np  # noqa: E402
from gi.repository import Gst, GstVideo  # noqa: E402

from fornet.runtime.video.gst_element.frames import FrameLayout, to_bgr, write_bgr  # noqa: E402

#: ``GstVideoColorRange`` of full-range samples (its Python name starts with a digit).
_FULL_RANGE = getattr(GstVideo.VideoColorRange, "0_255")


def layout_of(info: GstVideo.VideoInfo, buffer: Gst.Buffer | None = None) -> FrameLayout:
    """The memory layout of a frame of ``info``, with the strides and offsets of ``buffer``'s video meta."""
    planes = info.finfo.n_planes
    strides, offsets = tuple(info.stride[:planes]), tuple(info.offset[:planes])
    video_meta = GstVideo.buffer_get_video_meta(buffer) if buffer is not None else None
    if video_meta is not None:
        strides, offsets = tuple(video_meta.stride[:planes]), tuple(video_meta.offset[:planes])
    ok, kr, kb = GstVideo.video_color_matrix_get_Kr_Kb(info.colorimetry.matrix)
    return FrameLayout(format=info.finfo.name, width=info.width, height=info.height, strides=strides,
                       offsets=offsets, kr=kr if ok else 0.299, kb=kb if ok else 0.114,
                       full_range=info.colorimetry.range == _FULL_RANGE)


def read_bgr(buffer: Gst.Buffer, info: GstVideo.VideoInfo) -> np.ndarray:
    """The frame in ``buffer`` (negotiated as ``info``: BGR, BGRx, RGBA or NV12) as an ``H x W x 3`` BGR array.

    Raises:
        ValueError: the buffer cannot be read, or is too small for ``info``.
    """
    ok, mapped = buffer.map(Gst.MapFlags.READ)
    if not ok:
        raise ValueError("cannot map a frame for reading")
    try:
        return to_bgr(mapped.data, layout_of(info, buffer))
    finally:
        buffer.unmap(mapped)


def draw_bgr(buffer: Gst.Buffer, bgr: np.ndarray, info: GstVideo.VideoInfo) -> None:
    """Replace the pixels of the frame in ``buffer`` (writable, negotiated as ``info``) by ``bgr``.

    Raises:
        ValueError: the buffer cannot be written, or ``bgr`` does not fit it.
    """
    ok, mapped = buffer.map(Gst.MapFlags.READ | Gst.MapFlags.WRITE)
    if not ok:
        raise ValueError("cannot map a frame for writing")
    try:
        write_bgr(mapped.data, bgr, layout_of(info, buffer))
    finally:
        buffer.unmap(mapped)


def bgr_buffer(bgr: np.ndarray) -> Gst.Buffer:
    """A new buffer holding the ``H x W x 3`` uint8 ``bgr`` as ``video/x-raw,format=BGR`` lays it out."""
    height, width, _ = bgr.shape
    info = GstVideo.VideoInfo.new()
    info.set_format(GstVideo.VideoFormat.BGR, width, height)
    data = bytearray(info.size)
    write_bgr(memoryview(data), bgr, layout_of(info))
    return Gst.Buffer.new_wrapped(bytes(data))
