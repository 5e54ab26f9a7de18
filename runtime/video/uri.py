"""What an input or output string names: ``parse_source`` and ``parse_sink``.

Inputs (the forms of jetson-inference's ``segnet``)::

    video.mp4, file:///data/drive.mkv          a video file: every frame, in order
    frame.png, folder/, "shots/*.jpg"          image files, a folder of them, or a glob
    v4l2:///dev/video0                          a V4L2 camera (live)
    csi://0                                     a Jetson CSI camera through nvarguscamerasrc (live)
    rtsp://user:pass@host:8554/path             an RTSP stream (live)
    http://host/stream.m3u8, https://...        an HTTP(S) stream (live)
    gst://videotestsrc ! videoconvert ! appsink a raw GStreamer pipeline ending in an appsink (live;
                                                a file when it reads files or ends: filesrc, num-buffers)

Outputs::

    out.mp4, out.mkv                            an H.264 video file (finalised even on Ctrl-C)
    folder/                                     one image per frame (overlay or mask)
    rtsp://@:8554/out                           an RTSP server on 127.0.0.1:8554, mount /out (GStreamer)
    rtsp://0.0.0.0:8554/out                     the same on every interface (see ``rtsp_access``)
    display://0                                 a window
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from fornet.redact import mask_credentials
from fornet.runtime.video.errors import SinkError, SourceError
from fornet.runtime.video.rtsp_access import check_host

SourceKind = Literal["video", "images", "v4l2", "csi", "rtsp", "http", "gst"]
SinkKind = Literal["video", "images", "rtsp", "display"]

#: Extensions read as still images; anything else in a file path is opened as a video.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Containers a video output may use.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi")
#: Live kinds: the newest frame wins by default, and the source reconnects after a gap.
LIVE_KINDS = frozenset({"v4l2", "csi", "rtsp", "http", "gst"})
#: What makes a ``gst://`` pipeline finite (read as a file by default): a file source or a buffer count.
FINITE_PIPELINE = re.compile(r"\b(filesrc|multifilesrc|splitfilesrc)\b|\bnum-buffers\s*=|\bfile://")

_SCHEMES = "file://, v4l2://, csi://, rtsp://, http(s)://, gst:// or a plain path"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed input.

    Attributes:
        uri: the string as given (credentials included; see :attr:`display_name`).
        kind: what it names (see the module docstring).
        location: the file, device, camera index, URL or pipeline text.
        files: the image files of an ``images`` input, sorted.
        finite: a ``gst://`` pipeline that reads files or ends by itself (:data:`FINITE_PIPELINE`).
    """

    uri: str
    kind: SourceKind
    location: str
    files: tuple[str, ...] = ()
    finite: bool = False

    @property
    def live(self) -> bool:
        """Whether frames arrive in real time (cameras and streams) rather than from storage (the default
        of ``--input-kind``)."""
        return self.kind in LIVE_KINDS and not self.finite

    @property
    def display_name(self) -> str:
        """The URI with any password replaced by ``***`` (for messages, logs and records)."""
        return mask_credentials(self.uri)


@dataclass(frozen=True)
class SinkSpec:
    """A parsed output: ``kind`` and ``location`` (file, folder, ``host:port/path`` or display index; an RTSP
    output's host is empty when the URI names none)."""

    uri: str
    kind: SinkKind
    location: str


def _local_path(text: str) -> str:
    return urlsplit(text).path if text.startswith("file://") else text


def _image_files(pattern: str) -> tuple[str, ...]:
    return tuple(sorted(p for p in glob.glob(pattern) if p.lower().endswith(IMAGE_EXTENSIONS)))


def parse_source(uri: str) -> SourceSpec:
    """Parse an input string; raises :class:`SourceError` naming the fix for anything unusable."""
    text = str(uri).strip()
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "v4l2":
        device = urlsplit(text).path or "/dev/video0"
        if not os.path.exists(device):
            raise SourceError(f"camera {device} does not exist; list cameras with `v4l2-ctl --list-devices` "
                              "(or `ls /dev/video*`) and pass v4l2:///dev/videoN")
        return SourceSpec(text, "v4l2", device)
    if scheme == "csi":
        index = text[len("csi://"):] or "0"
        if not index.isdigit():
            raise SourceError(f"{text!r}: a CSI camera is csi://N with the sensor index N (csi://0)")
        return SourceSpec(text, "csi", index)
    if scheme == "rtsp":
        return SourceSpec(text, "rtsp", text)
    if scheme in ("http", "https"):
        return SourceSpec(text, "http", text)
    if scheme == "gst":
        pipeline = text[len("gst://"):].strip()
        if "appsink" not in pipeline:
            raise SourceError("a gst:// pipeline must end in an appsink (… ! videoconvert ! appsink), so that "
                              "frames can be pulled from it")
        return SourceSpec(text, "gst", pipeline, finite=FINITE_PIPELINE.search(pipeline) is not None)
    if scheme not in ("", "file"):
        raise SourceError(f"unknown input scheme {scheme}:// in {text!r}; use {_SCHEMES}")
    path = _local_path(text)
    if any(ch in path for ch in "*?["):
        files = _image_files(path)
        if not files:
            raise SourceError(f"no image files match {path!r}; check the pattern (quote it so the shell "
                              f"does not expand it); images end in {', '.join(IMAGE_EXTENSIONS)}")
        return SourceSpec(text, "images", path, files)
    if os.path.isdir(path):
        files = _image_files(os.path.join(glob.escape(path), "*"))
        if not files:
            raise SourceError(f"folder {path} holds no image files; put .png/.jpg frames in it or pass a video")
        return SourceSpec(text, "images", path, files)
    if not os.path.isfile(path):
        raise SourceError(f"input file not found: {path}; fix the path, or use a scheme ({_SCHEMES})")
    if not os.access(path, os.R_OK):
        raise SourceError(f"input file {path} is not readable; fix its permissions")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return SourceSpec(text, "images", path, (path,))
    return SourceSpec(text, "video", path)


#: An RTSP output's mount path: ``/name`` segments of letters, digits and ``._~-``.
_MOUNT = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def _rtsp_server_location(text: str) -> str:
    """``HOST:PORT/path`` of an RTSP output URI (``HOST`` empty when the URI names none; see ``rtsp_access``)."""
    parts = urlsplit(text)
    if parts.username or parts.password:
        raise SinkError(f"{mask_credentials(text)!r}: an RTSP output takes no login in its URI (every user sees the "
                        "command line in ps); pass --rtsp-user USER and set FORNET_RTSP_PASSWORD (or "
                        "--rtsp-password-file FILE)")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise SinkError(f"{text!r}: name the server's port (1 to 65535), e.g. rtsp://@:8554/out")
    path = parts.path or "/out"
    if not _MOUNT.fullmatch(path) or parts.query or parts.fragment:
        raise SinkError(f"{text!r}: the mount path {path!r} may hold only letters, digits, '.', '_', '~', '-' and '/' "
                        "(e.g. rtsp://@:8554/seg)")
    host = parts.hostname or ""
    if host:
        check_host(host, "the RTSP output address")
    return f"{host}:{port}{path}"


def parse_sink(uri: str) -> SinkSpec:
    """Parse an output string; raises :class:`SinkError` naming the fix for anything unusable."""
    text = str(uri).strip()
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "rtsp":
        return SinkSpec(text, "rtsp", _rtsp_server_location(text))
    if scheme == "display":
        return SinkSpec(text, "display", text[len("display://"):] or "0")
    if scheme not in ("", "file"):
        raise SinkError(f"unknown output scheme {scheme}:// in {text!r}; use a video file (.mp4/.mkv), a folder, "
                        "rtsp://@:PORT/path or display://0")
    path = _local_path(text)
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return SinkSpec(text, "video", path)
    if suffix in IMAGE_EXTENSIONS:
        raise SinkError(f"output {path!r} is one image file, but a video gives many frames; pass a folder "
                        "(frames are written as NNNNNN.png/.jpg) or a video file (.mp4/.mkv)")
    if suffix:
        raise SinkError(f"cannot tell what to write for {path!r}: video outputs end in "
                        f"{', '.join(VIDEO_EXTENSIONS)}; a folder has no extension")
    return SinkSpec(text, "images", path)
