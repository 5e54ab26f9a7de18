"""The label map ``fornetseg`` attaches to each frame it passes on, and how an application reads it back.

The map travels as a standard ``GstVideoRegionOfInterestMeta`` covering the whole frame (type
``fornet-labels``, id :data:`META_ID`) whose ``fornet-labels`` parameter holds the GRAY8 label buffer and
its ``width``, ``height`` and ``classes``: any GStreamer application can read it, and it survives
buffer copies and elements that keep metas (``queue``, ``tee``, ``appsink``). From Python::

    from fornet.runtime.video.gst_element.meta import labels_of
    labels = labels_of(sample.get_buffer())        # H x W uint8 trainIds, or None
"""
# ruff: noqa: TID253
# (a GStreamer element: GStreamer is its job)

from __future__ import annotations

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
import numpy as np  # noqa: E402
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

from fornet.runtime.video.gst_element.frames import pack_labels, unpack_labels  # noqa: E402

#: The region-of-interest type and parameter name of the label map.
ROI_TYPE = "fornet-labels"
#: The meta's id on every buffer ("FNSG"), so that other ROI metas on the same buffer do not clash.
META_ID = 0x464E5347


def attach_labels(buffer: Gst.Buffer, labels: np.ndarray, classes: int) -> None:
    """Attach the ``H x W`` uint8 ``labels`` of the frame in ``buffer`` (which must be writable)."""
    height, width = labels.shape
    meta = GstVideo.buffer_add_video_region_of_interest_meta(buffer, ROI_TYPE, 0, 0, width, height)
    meta.id = META_ID
    param = Gst.Structure.new_empty(ROI_TYPE)
    param.set_value("labels", Gst.Buffer.new_wrapped(pack_labels(labels)))
    param.set_value("width", width)
    param.set_value("height", height)
    param.set_value("classes", classes)
    meta.add_param(param)


def labels_of(buffer: Gst.Buffer) -> np.ndarray | None:
    """The ``H x W`` uint8 label map ``fornetseg`` attached to ``buffer``, or ``None`` when it has none."""
    meta = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, META_ID)
    if meta is None or GLib.quark_to_string(meta.roi_type) != ROI_TYPE:
        return None
    param = meta.get_param(ROI_TYPE)
    data = param.get_value("labels")
    ok, mapped = data.map(Gst.MapFlags.READ)
    if not ok:
        return None
    try:
        return unpack_labels(mapped.data, param.get_value("width"), param.get_value("height"))
    finally:
        data.unmap(mapped)
