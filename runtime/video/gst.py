"""GStreamer through PyGObject (``python3-gi``), not through an OpenCV build.

pip's OpenCV wheels have no GStreamer, and a venv that pip-installs OpenCV shadows JetPack's
GStreamer-enabled one; the GObject bindings work in any venv. :func:`import_gst` finds them: the
venv's own ``gi`` if installed, else the system's (``python3-gi``, present on JetPack and Debian)
when it was built for this interpreter's ABI. The system folder is on ``sys.path`` only while
``gi`` is imported, so nothing else from it leaks into the venv. ``FORNET_SYSTEM_GI=0`` disables
that fallback.

Source pipelines are built element by element (:func:`source_pipeline`): the location (URL, file
URI, device, sensor index) is a property value, never pipeline text, so an address holding ``"`` or
``!`` cannot add elements; ``gst://`` is the one input given as text. They end in ``videoconvert !
BGR ! appsink max-buffers=1 drop=true sync=false``, which keeps only the newest frame and is real
time from the first frame; a bigger ``--buffer`` raises ``max-buffers`` and stops dropping. A
``gst://`` pipeline's appsink is asked for the same BGR caps (an appsink without caps would take the
first format offered, e.g. ``videotestsrc``'s 8-byte ABGR64_LE); an appsink whose own caps exclude
BGR is refused, and a pipeline that cannot convert to BGR fails with the fix (``videoconvert``):

* ``csi://N``: ``nvarguscamerasrc sensor-id=N ! NVMM NV12 ! nvvidconv ! BGRx ! videoconvert ! BGR``
* ``rtsp://``: ``rtspsrc protocols=tcp latency=... ! rtph264depay ! h264parse ! DECODER ! videoconvert``
  with ``nvv4l2decoder`` (Jetson) where present, else ``avdec_h264`` or ``openh264dec``
* ``v4l2:///dev/videoN``: ``v4l2src device=... ! videoconvert``
* ``http(s)://`` and files: ``uridecodebin uri=... ! videoconvert``

The RTSP output (:class:`GstRtspServer`) serves a fixed media description whose frame caps are set
on its appsrc as values; it listens on one address and may require a login
(:mod:`fornet.runtime.video.rtsp_access`).
"""

from __future__ import annotations

import functools
import glob
import importlib.machinery
import importlib.util
import itertools
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from fornet.runtime.video.errors import SinkError, SourceError, VideoError

#: Where distributions install python3-gi.
SYSTEM_SITE_DIRS = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages")
INSTALL_HINT = ("install GStreamer's Python bindings: sudo apt-get install python3-gi python3-gst-1.0 "
                "gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good (on Jetson "
                "JetPack ships them), or pip install PyGObject into the venv")


def _system_gi_dir() -> str | None:
    if os.environ.get("FORNET_SYSTEM_GI", "1") == "0":
        return None
    for directory in SYSTEM_SITE_DIRS:
        gi_dir = Path(directory) / "gi"
        if any((gi_dir / f"_gi{suffix}").exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            return directory
    return None


@functools.cache
def import_gst() -> tuple[ModuleType, ModuleType]:
    """``(Gst, GLib)`` initialised, or :class:`VideoError` naming the packages to install."""
    try:
        import gi
    except ImportError:
        directory = _system_gi_dir()
        if directory is None:
            raise VideoError(f"GStreamer is not reachable from this Python; {INSTALL_HINT}") from None
        sys.path.append(directory)
        try:
            import gi
        except ImportError as exc:
            raise VideoError(f"the system's python3-gi does not load here ({exc}); {INSTALL_HINT}") from exc
        finally:
            sys.path.remove(directory)
    try:
        gi.require_version("Gst", "1.0")
        from gi.repository import GLib, Gst
    except (ValueError, ImportError) as exc:
        raise VideoError(f"GStreamer's introspection data is missing ({exc}); {INSTALL_HINT}") from exc
    Gst.init(None)
    return Gst, GLib


#: Where GObject introspection data (``Gst-1.0.typelib``) is installed, besides ``GI_TYPELIB_PATH``.
TYPELIB_GLOBS = ("/usr/lib/girepository-1.0", "/usr/lib/*/girepository-1.0", "/usr/local/lib/*/girepository-1.0")


@functools.cache
def gst_available() -> bool:
    """Whether GStreamer's Python bindings and introspection data are installed.

    A cheap check that does not load GStreamer into this process (loading it costs time and
    threads, and a process that only reads files through PyAV should not pay for it).
    """
    has_gi = importlib.util.find_spec("gi") is not None or _system_gi_dir() is not None
    folders = [p for p in os.environ.get("GI_TYPELIB_PATH", "").split(os.pathsep) if p]
    folders += [folder for pattern in TYPELIB_GLOBS for folder in glob.glob(pattern)]
    return has_gi and any((Path(folder) / "Gst-1.0.typelib").exists() for folder in folders)


def has_element(name: str) -> bool:
    """Whether the GStreamer element factory ``name`` is installed."""
    gst, _ = import_gst()
    return gst.ElementFactory.find(name) is not None


def h264_decoder() -> str:
    """The best installed H.264 decoder: ``nvv4l2decoder`` (Jetson), else a software one."""
    for name in ("nvv4l2decoder", "avdec_h264", "openh264dec"):
        if has_element(name):
            return name
    raise SourceError("GStreamer has no H.264 decoder; install gstreamer1.0-libav (avdec_h264) or "
                      "gstreamer1.0-plugins-bad (openh264dec)")


#: The caps every source pipeline ends in (before its appsink).
BGR_CAPS = "video/x-raw,format=BGR"


def element(factory: str, name: str | None = None, **properties: object) -> Any:
    """A new GStreamer element with ``properties`` set as values (``tcp_timeout`` sets ``tcp-timeout``).

    A value is handed to the element as it is, never parsed as pipeline text, so a URL or a path
    with quotes, ``!`` or spaces stays one property value.
    """
    gst, _ = import_gst()
    made = gst.ElementFactory.make(factory, name)
    if made is None:
        raise SourceError(f"GStreamer has no element {factory}; install the plugin that provides it (check with "
                          f"gst-inspect-1.0 {factory})")
    for key, value in properties.items():
        made.set_property(key.replace("_", "-"), value)
    return made


def caps_filter(caps: str) -> Any:
    """A ``capsfilter`` with one of this module's own caps strings (never user text)."""
    gst, _ = import_gst()
    return element("capsfilter", caps=gst.Caps.from_string(caps))


def appsink(buffers: int) -> Any:
    """The appsink named ``sink`` that every source pipeline ends in (the newest frame when ``buffers`` is 1)."""
    return element("appsink", "sink", max_buffers=buffers, drop=buffers == 1, sync=False)


def _link_video_pad(source: Any, target: Any) -> None:
    """Link ``source``'s first video pad (rtspsrc, uridecodebin add them once the stream is known) to ``target``."""
    sink_pad = target.get_static_pad("sink")

    def on_pad_added(_source: Any, pad: Any) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        if sink_pad.is_linked() or caps is None or caps.get_size() == 0:
            return
        structure = caps.get_structure(0)
        kind = structure.get_name()
        video = structure.get_string("media") == "video" if kind == "application/x-rtp" else kind.startswith("video/")
        if video:
            pad.link(sink_pad)

    source.connect("pad-added", on_pad_added)


def _pipeline(chain: list[Any], source: Any = None) -> Any:
    """A pipeline of ``chain`` linked in order, fed by ``source``'s dynamic video pad when given."""
    gst, _ = import_gst()
    pipeline = gst.Pipeline.new(None)
    for part in ([source] if source is not None else []) + chain:
        pipeline.add(part)
    for upstream, downstream in itertools.pairwise(chain):
        if not upstream.link(downstream):
            raise SourceError(f"GStreamer cannot link {upstream.get_factory().get_name()} to "
                              f"{downstream.get_factory().get_name()}; check the plugins with gst-inspect-1.0")
    if source is not None:
        _link_video_pad(source, chain[0])
    return pipeline


#: What to do when a ``gst://`` pipeline cannot deliver BGR frames.
BGR_FIX = f"end the pipeline in `videoconvert ! appsink` (fornet asks the appsink for {BGR_CAPS})"


def find_appsink(pipeline: Any, name: str) -> Any:
    """The pipeline's ``appsink`` named ``sink``, else its only appsink (``name`` says whose, in errors)."""
    sink = pipeline.get_by_name("sink")
    if sink is None:
        sinks = [e for e in pipeline.iterate_sinks() if e.get_factory().get_name() == "appsink"]
        sink = sinks[0] if sinks else None
    if sink is None:
        raise SourceError(f"the pipeline of {name} has no appsink to pull frames from")
    return sink


def parse_pipeline(description: str, file_buffers: int | None = None) -> Any:
    """A ``gst://`` pipeline, parsed as written (the one input given as pipeline text, by its author), its
    appsink asked for BGR frames.

    ``file_buffers``: the pipeline is read as a file (``--input-kind file``): its appsink holds at most
    that many frames and makes the pipeline wait for room (an appsink as written queues without bound),
    and hands them out as fast as they are taken, not at the clock's pace. ``None``: live, as written.

    Raises:
        SourceError: the text does not parse, or its appsink's own caps exclude BGR.
    """
    gst, _ = import_gst()
    try:
        pipeline = gst.parse_launch(description)
    except Exception as exc:  # GLib.Error: a bad element or property
        raise SourceError(f"GStreamer cannot build the pipeline {description!r}: {exc}; check the element "
                          "names with gst-inspect-1.0") from exc
    sink = find_appsink(pipeline, "gst://")
    bgr = gst.Caps.from_string(BGR_CAPS)
    caps = sink.get_property("caps")
    if caps is not None and not caps.is_any():
        if not caps.can_intersect(bgr):
            raise SourceError(f"the gst:// pipeline's appsink takes {caps.to_string()}, a format fornet does not "
                              f"read; {BGR_FIX} and drop its caps=")
        bgr = caps.intersect(bgr)
    sink.set_property("caps", bgr)
    if file_buffers is not None:
        for key, value in (("max-buffers", file_buffers), ("drop", False), ("sync", False)):
            sink.set_property(key, value)
    return pipeline


def source_pipeline(kind: str, location: str, buffers: int = 1, rtsp_latency_ms: int = 0,
                    timeout_s: float = 2.0, live: bool = True) -> Any:
    """The ``Gst.Pipeline`` of a source (see the module docstring), ending in :func:`appsink`.

    Built element by element: the location (URL, file URI, device, sensor index) is a property value,
    never pipeline text. Only ``gst`` (a ``gst://`` input) is parsed, as its author wrote it (``live``:
    how it is read, see :func:`parse_pipeline`).
    """
    if kind == "gst":
        return parse_pipeline(location, None if live else buffers)
    tail = [element("videoconvert"), caps_filter(BGR_CAPS), appsink(buffers)]
    if kind == "csi":
        return _pipeline([element("nvarguscamerasrc", sensor_id=int(location)),
                          caps_filter("video/x-raw(memory:NVMM),format=NV12"), element("nvvidconv"),
                          caps_filter("video/x-raw,format=BGRx"), *tail])
    if kind == "v4l2":
        return _pipeline([element("v4l2src", device=location), *tail])
    if kind == "rtsp":
        gst, _ = import_gst()
        source = element("rtspsrc", location=location, latency=rtsp_latency_ms, tcp_timeout=int(timeout_s * 1e6))
        gst.util_set_object_arg(source, "protocols", "tcp")
        decoder = h264_decoder()
        chain = [element("rtph264depay"), element("h264parse"), element(decoder)]
        if decoder == "nvv4l2decoder":
            chain += [element("nvvidconv"), caps_filter("video/x-raw,format=BGRx")]
        return _pipeline([*chain, *tail], source)
    if kind in ("http", "video"):
        return _pipeline(tail, element("uridecodebin", uri=location))
    raise SourceError(f"GStreamer cannot open a {kind} input")


class GstReader:
    """Frames from a GStreamer pipeline's ``appsink`` named ``sink`` (or its only appsink).

    ``name`` says what is read in messages (the source's name, without passwords).
    """

    def __init__(self, pipeline: Any, name: str) -> None:
        self.name = name
        self._gst, _ = import_gst()
        self._pipeline = pipeline
        self._sink = find_appsink(pipeline, name)
        self._bus = self._pipeline.get_bus()
        if self._pipeline.set_state(self._gst.State.PLAYING) == self._gst.StateChangeReturn.FAILURE:
            self._raise_bus_error("cannot start")

    def _bus_error(self) -> str | None:
        """The pipeline's error message, if one is waiting, with the fix when it cannot make BGR frames."""
        message = self._bus.pop_filtered(self._gst.MessageType.ERROR)
        if message is None:
            return None
        error, debug = message.parse_error()
        detail = error.message.rstrip(".")
        if "not-negotiated" in (debug or ""):
            detail += f" (it cannot deliver {BGR_CAPS} frames; {BGR_FIX})"
        return detail

    def _raise_bus_error(self, what: str) -> None:
        detail = self._bus_error() or "no details"
        self.close()
        raise SourceError(f"GStreamer {what} {self.name}: {detail}")

    def read(self, timeout_s: float) -> np.ndarray | None:
        """The next BGR frame; ``None`` after ``timeout_s`` without one. Raises ``EOFError`` at the end."""
        sample = self._sink.emit("try-pull-sample", int(timeout_s * 1e9))
        if sample is None:
            detail = self._bus_error()  # before the end: a failing source also ends its stream
            if detail is not None:
                raise SourceError(f"GStreamer cannot read {self.name}: {detail}")
            if self._sink.get_property("eos"):
                raise EOFError
            return None
        caps = sample.get_caps().get_structure(0)
        if caps.get_string("format") != "BGR":
            raise SourceError(f"{self.name} delivers {caps.get_string('format')} frames, not BGR; {BGR_FIX}")
        width, height = caps.get_value("width"), caps.get_value("height")
        buffer = sample.get_buffer()
        ok, info = buffer.map(self._gst.MapFlags.READ)
        if not ok:
            return None
        try:
            stride = len(info.data) // height
            rows = np.frombuffer(info.data, np.uint8).reshape(height, stride)
            return rows[:, : width * 3].reshape(height, width, 3).copy()
        finally:
            buffer.unmap(info)

    def close(self) -> None:
        """Stop the pipeline."""
        self._pipeline.set_state(self._gst.State.NULL)


#: The RTSP output's media, fixed text: the caps (frame size and rate) are set on the appsrc as values.
#: The BGR frames are converted to 4:2:0 (I420) before the encoder, and the stream is Constrained Baseline
#: (x264's ultrafast preset uses no CABAC, no B-frames, no 8x8 transform). Left to negotiate, x264enc
#: takes 4:4:4 from BGR and writes High 4:4:4, which Jetson's and DeepStream's decoders, openh264 and
#: browsers cannot play. On Jetson ``nvvidconv`` takes I420 (not BGR) into NVMM memory and
#: ``nvv4l2h264enc profile=0`` is its Baseline.
_RTSP_ENCODERS = {
    "nvenc": "videoconvert ! video/x-raw,format=I420 ! nvvidconv ! video/x-raw(memory:NVMM),format=I420 ! "
          "nvv4l2h264enc insert-sps-pps=true profile=0",
    "x264": "videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast ! "
           "video/x-h264,profile=constrained-baseline",
}
_RTSP_LAUNCH = ("( appsrc name=frames is-live=true format=time do-timestamp=true ! {encoder} ! "
                "rtph264pay name=pay0 config-interval=1 pt=96 )")
def rtsp_encoder(requested: str = "auto") -> str:
    """The RTSP output's encoder: ``nvenc`` (``nvv4l2h264enc``, Jetson's NVENC) or ``x264`` (``x264enc``).

    ``auto`` takes NVENC where GStreamer has ``nvv4l2h264enc``; ``nvenc`` where it lacks it is an error.
    """
    if requested not in ("auto", *_RTSP_ENCODERS):
        raise SinkError(f"unknown encoder {requested!r}; choose one of auto, {', '.join(_RTSP_ENCODERS)}")
    hardware = has_element("nvv4l2h264enc")
    if requested == "auto":
        return "nvenc" if hardware else "x264"
    if requested == "nvenc" and not hardware:
        raise SinkError("--encoder nvenc: the RTSP output encodes with nvv4l2h264enc (Jetson's NVENC), which this "
                        "machine's GStreamer lacks; use --encoder x264 or auto")
    return requested


#: The role that a client logged in with the server's user gets (it may open the stream).
_RTSP_ROLE = "viewer"


class GstRtspServer:
    """An RTSP server (``rtsp://HOST:PORT/PATH``) streaming BGR frames pushed with :meth:`push`.

    ``encoder`` is ``nvenc`` (``nvv4l2h264enc``, Jetson) or ``x264`` (``x264enc tune=zerolatency``; see
    :func:`rtsp_encoder`); the stream is H.264 4:2:0 (``yuv420p``) in the Constrained Baseline profile.
    The server runs a GLib main loop on its own thread; clients may connect at any time. It listens
    on ``host`` only; with ``login`` (user, password) a client must log in (RTSP basic
    authentication) to open the stream, others are answered 401.
    """

    def __init__(self, host: str, port: int, path: str, size: tuple[int, int], fps: float,
                 login: tuple[str, str] | None = None, encoder: str = "x264") -> None:
        gst, glib = import_gst()
        try:
            import gi

            gi.require_version("GstRtspServer", "1.0")
            from gi.repository import GstRtspServer as RtspServer
        except (ValueError, ImportError) as exc:
            raise SinkError("the GStreamer RTSP server is missing: sudo apt-get install gstreamer1.0-rtsp "
                            "gir1.2-gst-rtsp-server-1.0 (JetPack: the same packages)") from exc
        self._gst = gst
        height, width = size
        self._caps = gst.Caps.new_empty_simple("video/x-raw")
        self._caps.set_value("format", "BGR")
        self._caps.set_value("width", int(width))
        self._caps.set_value("height", int(height))
        self._caps.set_value("framerate", gst.Fraction(max(1, round(fps)), 1))
        self._server = RtspServer.RTSPServer()
        self._server.set_address(host)
        self._server.set_service(str(port))
        factory = RtspServer.RTSPMediaFactory()
        factory.set_launch(_RTSP_LAUNCH.format(encoder=_RTSP_ENCODERS[encoder]))
        factory.set_shared(True)
        factory.connect("media-configure", self._configure)
        if login is not None:
            self._require_login(RtspServer, factory, *login)
        self._server.get_mount_points().add_factory(path, factory)
        self._context = glib.MainContext.new()
        if self._server.attach(self._context) == 0:
            raise SinkError(f"cannot serve RTSP on {host}:{port}: the port is in use or the address is not one of "
                            "this machine; choose another port or address (rtsp://@:PORT/path)")
        self._loop = glib.MainLoop.new(self._context, False)
        self._appsrcs: list[Any] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run, name="fornet-rtsp-server", daemon=True)
        self._thread.start()
        self.port = self._server.get_bound_port()

    def _require_login(self, rtsp_server: ModuleType, factory: Any, user: str, password: str) -> None:
        """Only a client with ``user`` and ``password`` (basic authentication) may open ``factory``'s stream."""
        auth = rtsp_server.RTSPAuth()
        token = rtsp_server.RTSPToken()
        token.set_string(rtsp_server.RTSP_TOKEN_MEDIA_FACTORY_ROLE, _RTSP_ROLE)
        auth.add_basic(rtsp_server.RTSPAuth.make_basic(user, password), token)
        self._server.set_auth(auth)
        permissions = rtsp_server.RTSPPermissions()
        for permission in (rtsp_server.RTSP_PERM_MEDIA_FACTORY_ACCESS, rtsp_server.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
            permissions.add_permission_for_role(_RTSP_ROLE, permission, True)
        factory.set_permissions(permissions)

    def _configure(self, _factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("frames")
        appsrc.set_property("caps", self._caps)
        with self._lock:
            self._appsrcs.append(appsrc)

    def push(self, image: np.ndarray) -> None:
        """Send one BGR frame to every connected client."""
        data = self._gst.Buffer.new_wrapped(np.ascontiguousarray(image).tobytes())
        with self._lock:
            for appsrc in list(self._appsrcs):
                if appsrc.emit("push-buffer", data) != self._gst.FlowReturn.OK:
                    self._appsrcs.remove(appsrc)

    def close(self) -> None:
        """Stop serving."""
        with self._lock:
            for appsrc in self._appsrcs:
                appsrc.emit("end-of-stream")
            self._appsrcs.clear()
        self._loop.quit()
        self._thread.join(timeout=5)
