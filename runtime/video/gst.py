"""GStreamer through PyGObject (``python3-gi``), not through an OpenCV build.

pip's OpenCV wheels have no GStreamer, and a venv that pip-installs OpenCV shadows JetPack's
GStreamer-enabled one; the GObject bindings work in any venv. :func:`import_gst` finds them: the
venv's own ``gi`` if installed, else the system's (``python3-gi``, present on JetPack and Debian)
when it was built for this interpreter's ABI. The system folder is on ``sys.path`` only while
``gi`` is imported, so nothing else from it leaks into the venv. ``FORNET_SYSTEM_GI=0`` disables
that fallback.

Pipelines (``appsink max-buffers=1 drop=true sync=false`` keeps only the newest frame and is real
time from the first frame; a bigger ``--buffer`` raises ``max-buffers`` and stops dropping):

* ``csi://N``: ``nvarguscamerasrc sensor-id=N ! NVMM NV12 ! nvvidconv ! BGRx ! videoconvert ! BGR``
* ``rtsp://``: ``rtspsrc protocols=tcp latency=... ! rtph264depay ! h264parse ! DECODER ! videoconvert``
  with ``nvv4l2decoder`` (Jetson) where present, else ``avdec_h264`` or ``openh264dec``
* ``v4l2:///dev/videoN``: ``v4l2src device=... ! videoconvert``
"""

from __future__ import annotations

import functools
import glob
import importlib.machinery
import importlib.util
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


def appsink(buffers: int) -> str:
    """The BGR appsink every source pipeline ends in."""
    drop = "true" if buffers == 1 else "false"
    return f"video/x-raw,format=BGR ! appsink name=sink max-buffers={buffers} drop={drop} sync=false"


def source_pipeline(kind: str, location: str, buffers: int = 1, rtsp_latency_ms: int = 0,
                    timeout_s: float = 2.0) -> str:
    """The ``gst-launch`` description of a source (see the module docstring)."""
    if kind == "gst":
        return location
    if kind == "csi":
        return (f"nvarguscamerasrc sensor-id={location} ! video/x-raw(memory:NVMM),format=NV12 ! nvvidconv ! "
                f"video/x-raw,format=BGRx ! videoconvert ! {appsink(buffers)}")
    if kind == "v4l2":
        return f"v4l2src device={location} ! videoconvert ! {appsink(buffers)}"
    if kind == "rtsp":
        decoder = h264_decoder()
        convert = "nvvidconv ! video/x-raw,format=BGRx ! videoconvert" if decoder == "nvv4l2decoder" else "videoconvert"
        return (f'rtspsrc location="{location}" protocols=tcp latency={rtsp_latency_ms} '
                f"tcp-timeout={int(timeout_s * 1e6)} ! rtph264depay ! h264parse ! {decoder} ! {convert} ! "
                f"{appsink(buffers)}")
    if kind in ("http", "video"):
        return f'uridecodebin uri="{location}" ! videoconvert ! {appsink(buffers)}'
    raise SourceError(f"GStreamer cannot open a {kind} input")


class GstReader:
    """Frames from a GStreamer pipeline's ``appsink`` named ``sink`` (or the last appsink)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._gst, _ = import_gst()
        try:
            self._pipeline = self._gst.parse_launch(description)
        except Exception as exc:  # GLib.Error: a bad element or property
            raise SourceError(f"GStreamer cannot build the pipeline {description!r}: {exc}; check the element "
                              "names with gst-inspect-1.0") from exc
        sink = self._pipeline.get_by_name("sink")
        if sink is None:
            sinks = [e for e in self._pipeline.iterate_sinks() if e.get_factory().get_name() == "appsink"]
            sink = sinks[0] if sinks else None
        if sink is None:
            raise SourceError(f"the pipeline {description!r} has no appsink to pull frames from")
        self._sink = sink
        self._bus = self._pipeline.get_bus()
        if self._pipeline.set_state(self._gst.State.PLAYING) == self._gst.StateChangeReturn.FAILURE:
            self._raise_bus_error("cannot start")

    def _raise_bus_error(self, what: str) -> None:
        message = self._bus.pop_filtered(self._gst.MessageType.ERROR)
        detail = message.parse_error()[0].message if message is not None else "no details"
        self.close()
        raise SourceError(f"GStreamer {what} {self.description!r}: {detail}")

    def read(self, timeout_s: float) -> np.ndarray | None:
        """The next BGR frame; ``None`` after ``timeout_s`` without one. Raises ``EOFError`` at the end."""
        sample = self._sink.emit("try-pull-sample", int(timeout_s * 1e9))
        if sample is None:
            if self._sink.get_property("eos"):
                raise EOFError
            message = self._bus.pop_filtered(self._gst.MessageType.ERROR)
            if message is not None:
                raise SourceError(f"GStreamer: {message.parse_error()[0].message}")
            return None
        caps = sample.get_caps().get_structure(0)
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


class GstRtspServer:
    """An RTSP server (``rtsp://HOST:PORT/PATH``) streaming BGR frames pushed with :meth:`push`.

    The encoder is ``nvv4l2h264enc`` where present (Jetson), else ``x264enc tune=zerolatency``.
    The server runs a GLib main loop on its own thread; clients may connect at any time.
    """

    def __init__(self, host: str, port: int, path: str, size: tuple[int, int], fps: float) -> None:
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
        encoder = ("nvvidconv ! nvv4l2h264enc insert-sps-pps=true" if has_element("nvv4l2h264enc")
                   else "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast")
        caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={round(fps)}/1"
        launch = (f"( appsrc name=frames is-live=true format=time do-timestamp=true caps={caps} ! {encoder} ! "
                  "rtph264pay name=pay0 config-interval=1 pt=96 )")
        self._server = RtspServer.RTSPServer()
        self._server.set_address(host)
        self._server.set_service(str(port))
        factory = RtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        factory.connect("media-configure", self._configure)
        self._server.get_mount_points().add_factory(path, factory)
        self._context = glib.MainContext.new()
        if self._server.attach(self._context) == 0:
            raise SinkError(f"cannot serve RTSP on {host}:{port}: the port is in use or not allowed; choose "
                            "another port (rtsp://@:PORT/path)")
        self._loop = glib.MainLoop.new(self._context, False)
        self._appsrcs: list[Any] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run, name="fornet-rtsp-server", daemon=True)
        self._thread.start()
        self.port = self._server.get_bound_port()

    def _configure(self, _factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("frames")
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
