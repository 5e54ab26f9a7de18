"""The ``fornetseg`` GStreamer element: FoR-Net segmentation inside a GStreamer pipeline.

Loaded by GStreamer's Python plugin loader through ``python/fornetseg.py`` (see the package docstring)::

    ... ! videoconvert ! fornetseg model=fornet.onnx mode=overlay alpha=0.5 ! videoconvert ! ...

Pads: ``sink`` takes BGR, BGRx, RGBA or NV12 frames; ``src`` gives them back in the same format, with
the overlay drawn (``mode=overlay``), replaced by the class colours (``mask``) or untouched (``labels``),
each carrying its label map as a meta (:mod:`~fornet.runtime.video.gst_element.meta`); ``labels`` gives
the label maps alone as GRAY8 frames (pixel value = trainId) with the frames' timestamps.

The model opens when the element goes to READY (a missing file or a bad property is a GStreamer error
there, naming the fix). The streaming thread is blocked by at most one inference: the element holds up
to ``batch`` frames and runs them as one :meth:`~fornet.runtime.segmenter.Segmenter.segment_batch` (and
the rest at EOS), and adds the ``batch - 1`` frames it holds to the pipeline's latency. Each inference
posts an element message ``fornetseg-latency`` (``frame``, ``batch``, ``inference-ms``, ``latency-ms``:
arrival to push of the batch's first frame); the last values are the read-only properties
``inference-ms`` and ``latency-ms``, the frame count ``frames``.
"""
# ruff: noqa: TID253
# (a GStreamer element: GStreamer is its job)

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
import numpy as np  # noqa: E402
from gi.repository import GObject, Gst, GstBase, GstVideo  # noqa: E402

from fornet.runtime.model_spec import ModelSpec  # noqa: E402
from fornet.runtime.segmenter import Segmenter  # noqa: E402
from fornet.runtime.video.gst_element.buffers import draw_bgr, read_bgr  # noqa: E402
from fornet.runtime.video.gst_element.frames import FORMATS, pack_labels  # noqa: E402
from fornet.runtime.video.gst_element.meta import attach_labels  # noqa: E402

#: What the element does to the frames it passes on.
MODES = ("overlay", "mask", "labels")
#: The element's name in pipelines.
ELEMENT_NAME = "fornetseg"
#: The name of the element message posted after each inference.
LATENCY_MESSAGE = "fornetseg-latency"

_SHALLOW_COPY = (Gst.BufferCopyFlags.FLAGS | Gst.BufferCopyFlags.TIMESTAMPS | Gst.BufferCopyFlags.META
                 | Gst.BufferCopyFlags.MEMORY)
_RW = GObject.ParamFlags.READWRITE
_RO = GObject.ParamFlags.READABLE
_FRAME_CAPS = (f"video/x-raw, format=(string){{ {', '.join(FORMATS)} }}, width=(int)[1, 2147483647], "
               "height=(int)[1, 2147483647], framerate=(fraction)[0/1, 2147483647/1]")
_LABEL_CAPS = ("video/x-raw, format=(string)GRAY8, width=(int)[1, 2147483647], height=(int)[1, 2147483647], "
               "framerate=(fraction)[0/1, 2147483647/1]")


def _template(name: str, direction: Gst.PadDirection, caps: str) -> Gst.PadTemplate:
    return Gst.PadTemplate.new(name, direction, Gst.PadPresence.ALWAYS, Gst.Caps.from_string(caps))


@dataclass
class _Held:
    """A frame waiting for its batch: the input buffer, its BGR pixels, its arrival time."""

    buffer: Gst.Buffer
    bgr: np.ndarray
    arrived: float


class FornetSeg(Gst.Element):
    """FoR-Net semantic segmentation of video frames (see the module docstring)."""

    __gtype_name__ = "GstFornetSeg"
    __gstmetadata__ = ("FoR-Net segmentation", "Filter/Analyzer/Video",
                       "Semantic segmentation with an exported FoR-Net: overlay, colour mask or label map",
                       "fornet-deploy")
    __gsttemplates__ = (
        _template("sink", Gst.PadDirection.SINK, _FRAME_CAPS),
        _template("src", Gst.PadDirection.SRC, _FRAME_CAPS),
        _template("labels", Gst.PadDirection.SRC, _LABEL_CAPS),
    )
    __gproperties__: ClassVar[dict[str, tuple[object, ...]]] = {
        "model": (str, "model", "the exported model: ONNX (with its .onnx.json sidecar), TensorRT plan or checkpoint",
                  None, _RW),
        "device": (str, "device", "where the model runs: auto, cpu, cuda or cuda:N", "auto", _RW),
        "mode": (str, "mode", "what the src pad gives: overlay (frames with the classes drawn), mask (class "
                 "colours) or labels (frames untouched); every frame carries its label map as a meta", "overlay",
                 _RW),
        "alpha": (float, "alpha", "opacity of the overlay's class colours", 0.0, 1.0, 0.5, _RW),
        "batch": (int, "batch", "frames per inference (the element holds up to batch - 1 frames)", 1, 1024, 1, _RW),
        "post-messages": (bool, "post messages", f"post a {LATENCY_MESSAGE} element message after each inference",
                          True, _RW),
        "latency-ms": (float, "latency (ms)", "arrival to push of the last batch's first frame", 0.0, 1e12, 0.0, _RO),
        "inference-ms": (float, "inference (ms)", "duration of the last inference", 0.0, 1e12, 0.0, _RO),
        "frames": (GObject.TYPE_UINT64, "frames", "frames segmented", 0, GObject.G_MAXUINT64, 0, _RO),
    }

    def __init__(self) -> None:
        super().__init__()
        self._settings = {"model": None, "device": "auto", "mode": "overlay", "alpha": 0.5, "batch": 1,
                          "post-messages": True}
        self._stats = {"latency-ms": 0.0, "inference-ms": 0.0, "frames": 0}
        self._segmenter: Segmenter | None = None
        self._info: GstVideo.VideoInfo | None = None
        self._held: list[_Held] = []
        self._stream_lock = threading.Lock()  # the held frames: streaming thread vs. flushes and state changes
        self.sinkpad = Gst.Pad.new_from_template(self.get_pad_template("sink"), "sink")
        self.sinkpad.set_chain_function_full(self._chain, None)
        self.sinkpad.set_event_function_full(self._sink_event, None)
        self.sinkpad.set_query_function_full(self._query, None)
        self.srcpad = Gst.Pad.new_from_template(self.get_pad_template("src"), "src")
        self.srcpad.set_query_function_full(self._query, None)
        self.labelpad = Gst.Pad.new_from_template(self.get_pad_template("labels"), "labels")
        self.labelpad.set_query_function_full(self._query, None)
        for pad in (self.sinkpad, self.srcpad, self.labelpad):
            self.add_pad(pad)
        self._flows = GstBase.FlowCombiner.new()
        self._flows.add_pad(self.srcpad)
        self._flows.add_pad(self.labelpad)

    # -- properties ----------------------------------------------------------------------------
    def do_get_property(self, prop: GObject.ParamSpec) -> object:
        if prop.name in self._stats:
            return self._stats[prop.name]
        return self._settings[prop.name]

    def do_set_property(self, prop: GObject.ParamSpec, value: object) -> None:
        self._settings[prop.name] = value

    def _settings_problem(self) -> str | None:
        """What is wrong with the properties, naming the fix, or ``None``."""
        if not self._settings["model"]:
            return "no model: set model=PATH (an exported fornet.onnx, a .plan or a .pth)"
        if self._settings["mode"] not in MODES:
            return f"mode={self._settings['mode']!r} is not one of {', '.join(MODES)}: set mode=overlay, mask or labels"
        return None

    # -- state ---------------------------------------------------------------------------------
    def do_change_state(self, transition: Gst.StateChange) -> Gst.StateChangeReturn:
        if transition == Gst.StateChange.NULL_TO_READY and not self._open():
            return Gst.StateChangeReturn.FAILURE
        if transition == Gst.StateChange.READY_TO_PAUSED:
            self._flows.reset()
        result = Gst.Element.do_change_state(self, transition)
        if transition == Gst.StateChange.PAUSED_TO_READY:
            with self._stream_lock:
                self._held.clear()
                self._info = None
        elif transition == Gst.StateChange.READY_TO_NULL and self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None
        return result

    def _open(self) -> bool:
        problem = self._settings_problem()
        if problem is not None:
            self._error(Gst.LibraryError.SETTINGS, problem)
            return False
        try:
            self._segmenter = Segmenter(ModelSpec(Path(self._settings["model"]), device=self._settings["device"]))
        except Exception as exc:  # a GStreamer error, not a traceback: the FornetError's message names the fix
            self._error(Gst.LibraryError.INIT, f"cannot open the model: {exc}")
            return False
        return True

    def _error(self, code: Gst.LibraryError, text: str) -> None:
        self.message_full(Gst.MessageType.ERROR, Gst.LibraryError.quark(), code, f"{ELEMENT_NAME}: {text}", None,
                          __file__, "fornetseg", 0)

    # -- negotiation ---------------------------------------------------------------------------
    def _query(self, pad: Gst.Pad, parent: Gst.Object, query: Gst.Query) -> bool:
        if query.type == Gst.QueryType.CAPS and pad is not self.labelpad:
            # Frames pass through in their own format: what one side takes is what the other side's peer takes.
            other = self.srcpad if pad is self.sinkpad else self.sinkpad
            caps = other.peer_query_caps(query.parse_caps()).intersect(pad.get_pad_template_caps())
            query.set_caps_result(caps)
            return True
        if query.type == Gst.QueryType.ACCEPT_CAPS and pad is self.sinkpad:
            query.set_accept_caps_result(query.parse_accept_caps().is_subset(pad.get_pad_template_caps()))
            return True
        if query.type == Gst.QueryType.LATENCY and pad is not self.sinkpad:
            if not self.sinkpad.peer_query(query):
                return False
            live, low, high = query.parse_latency()
            held = self._held_latency()
            query.set_latency(live, low + held, high if high == Gst.CLOCK_TIME_NONE else high + held)
            return True
        return Gst.Pad.query_default(pad, parent, query)

    def _held_latency(self) -> int:
        """Nanoseconds the batch adds: ``batch - 1`` frame durations."""
        info = self._info
        if info is None or info.fps_n <= 0:
            return 0
        return (self._settings["batch"] - 1) * Gst.SECOND * info.fps_d // info.fps_n

    def _sink_event(self, pad: Gst.Pad, parent: Gst.Object, event: Gst.Event) -> bool:
        if event.type == Gst.EventType.CAPS:
            with self._stream_lock:
                self._run_held()  # the frames held were negotiated with the previous caps
            caps = event.parse_caps()
            info = GstVideo.VideoInfo.new_from_caps(caps)
            if info is None:
                return False
            self._info = info
            labels = GstVideo.VideoInfo.new()
            labels.set_format(GstVideo.VideoFormat.GRAY8, info.width, info.height)
            labels.fps_n, labels.fps_d = info.fps_n, info.fps_d
            self.labelpad.push_event(Gst.Event.new_caps(labels.to_caps()))
            return self.srcpad.push_event(Gst.Event.new_caps(caps))
        if event.type == Gst.EventType.EOS:
            with self._stream_lock:
                self._run_held()
        elif event.type == Gst.EventType.FLUSH_STOP:
            with self._stream_lock:
                self._held.clear()
            self._flows.reset()
        return Gst.Pad.event_default(pad, parent, event)

    # -- streaming -----------------------------------------------------------------------------
    def _chain(self, pad: Gst.Pad, parent: Gst.Object, buffer: Gst.Buffer) -> Gst.FlowReturn:
        try:
            return self._segment(buffer)
        except Exception as exc:  # a GStreamer error, not a traceback on the streaming thread
            self._error(Gst.LibraryError.FAILED, f"{type(exc).__name__}: {exc}")
            return Gst.FlowReturn.ERROR

    def _segment(self, buffer: Gst.Buffer) -> Gst.FlowReturn:
        """Hold ``buffer``'s frame; run the held frames when the batch is full."""
        arrived = time.perf_counter()
        info = self._info
        if info is None:
            self._error(Gst.LibraryError.FAILED, "a frame came before its caps")
            return Gst.FlowReturn.NOT_NEGOTIATED
        bgr = read_bgr(buffer, info)
        with self._stream_lock:
            self._held.append(_Held(buffer, bgr, arrived))
            if len(self._held) < self._settings["batch"]:
                return Gst.FlowReturn.OK
            return self._run_held()

    def _run_held(self) -> Gst.FlowReturn:
        """Segment the frames held in one inference and push them (call with the stream lock held)."""
        held, self._held = self._held, []
        if not held or self._segmenter is None or self._info is None:
            return Gst.FlowReturn.OK
        mode, alpha = self._settings["mode"], self._settings["alpha"]
        if mode not in MODES:
            self._error(Gst.LibraryError.SETTINGS, self._settings_problem() or mode)
            return Gst.FlowReturn.ERROR
        started = time.perf_counter()
        try:
            results = self._segmenter.segment_batch([item.bgr for item in held],
                                                    overlay_alpha=alpha if mode == "overlay" else None)
        except Exception as exc:  # a GStreamer error, not a traceback
            self._error(Gst.LibraryError.FAILED, f"inference failed: {exc}")
            return Gst.FlowReturn.ERROR
        inference_ms = (time.perf_counter() - started) * 1e3
        flow = Gst.FlowReturn.OK
        latency_ms = 0.0
        try:
            for index, (item, result) in enumerate(zip(held, results, strict=True)):
                flow = self._push(item.buffer, result.labels, result.overlay, mode)
                if index == 0:
                    latency_ms = (time.perf_counter() - item.arrived) * 1e3
                if flow != Gst.FlowReturn.OK:
                    break
        except Exception as exc:  # a GStreamer error, not a traceback
            self._error(Gst.LibraryError.FAILED, f"{type(exc).__name__}: {exc}")
            return Gst.FlowReturn.ERROR
        self._stats["frames"] += len(held)
        self._stats["inference-ms"], self._stats["latency-ms"] = inference_ms, latency_ms
        if self._settings["post-messages"]:
            report = Gst.Structure.new_empty(LATENCY_MESSAGE)
            report.set_value("frame", GObject.Value(GObject.TYPE_UINT64, self._stats["frames"]))
            report.set_value("batch", len(held))
            report.set_value("inference-ms", inference_ms)
            report.set_value("latency-ms", latency_ms)
            self.post_message(Gst.Message.new_element(self, report))
        return flow

    def _push(self, buffer: Gst.Buffer, labels: np.ndarray, overlay: np.ndarray | None, mode: str) -> Gst.FlowReturn:
        """Push one frame on ``src`` (as ``mode`` says, with its label meta) and its labels on ``labels``."""
        assert self._segmenter is not None and self._info is not None
        drawn = overlay if mode == "overlay" else self._segmenter.io.palette_bgr[labels] if mode == "mask" else None
        if drawn is None:
            # The frame passes untouched: a new buffer on the same memory, with its timestamps and metas.
            out = buffer.copy_region(_SHALLOW_COPY, 0, buffer.get_size())
        else:
            out = buffer.copy_deep()  # same layout, timestamps and metas; pixels replaced
            draw_bgr(out, drawn, self._info)
        attach_labels(out, labels, len(self._segmenter.classes))
        label_buffer = Gst.Buffer.new_wrapped(pack_labels(labels))
        _copy_timing(buffer, label_buffer)
        self._flows.update_pad_flow(self.labelpad, self.labelpad.push(label_buffer))
        return self._flows.update_pad_flow(self.srcpad, self.srcpad.push(out))


def _copy_timing(source: Gst.Buffer, target: Gst.Buffer) -> None:
    target.pts, target.dts, target.duration = source.pts, source.dts, source.duration
    target.offset, target.offset_end = source.offset, source.offset_end


GObject.type_register(FornetSeg)
