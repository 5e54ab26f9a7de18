"""Outputs of a video pipeline. Every sink has ``write(result)``, ``close()`` (finalise) and
``abort()`` (remove anything unfinished); :func:`open_sink` makes one from an output URI.

* :class:`VideoFileSink`: H.264 ``.mp4``/``.mkv``, playable even after Ctrl-C or SIGTERM
  (:mod:`fornet.runtime.video.encode`).
* :class:`ImageFolderSink`: one rendered image per frame.
* :class:`LabelPngSink`: one label PNG per frame, Cityscapes trainIds or labelIds (the official encodings).
* :class:`JsonLinesSink`: one JSON record per frame (source, source file, frame index, timestamps,
  stage times, frame age, class histogram); written under a temporary name and renamed on close.
* :class:`RtspSink`: an RTSP server (``rtsp://@:PORT/path``, GStreamer) on 127.0.0.1 unless told otherwise,
  with an optional login (:mod:`fornet.runtime.video.rtsp_access`).
* :class:`DisplaySink`: a window, where a display and a GUI-enabled OpenCV exist.

Files are named after the frame (:attr:`~fornet.runtime.video.frames.Frame.output_name`): an image input's
file stem (``frankfurt_000000_000294_leftImg8bit.png`` gives ``frankfurt_000000_000294_labelIds.png``,
the name the official Cityscapes evaluator looks for), else ``<source>-<frame>`` (``000000-000042.png``)
so several sources share a folder. A video, RTSP or display sink shows one source (``source_id``).

Every output path is checked when its sink is made, before any frame: a folder where a file goes,
a file where a folder goes, an unwritable place. A label folder that holds an earlier run's label
PNGs is refused (its labels and this run's would mix) unless ``overwrite``, which removes them at the
first frame.
A video has one frame size: frames of another size (an image folder of mixed sizes) are resized to
the first frame's size, with a warning; label PNGs keep each frame's own size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TextIO

import numpy as np

from fornet.atomic import (
    check_output_dir,
    check_output_file,
    ensure_writable_dir,
    publish,
    remove_stale_temporaries,
    temporary_file,
    write_bytes_atomic,
)
from fornet.calibration.labels import train_ids_to_label_ids
from fornet.records import LineRecord
from fornet.redact import mask_credentials
from fornet.runtime.video.encode import H264Writer, choose_encoder
from fornet.runtime.video.errors import SinkError
from fornet.runtime.video.frames import FrameResult
from fornet.runtime.video.gst import GstRtspServer, import_gst, rtsp_encoder
from fornet.runtime.video.rtsp_access import RtspAccess
from fornet.runtime.video.uri import SinkSpec, parse_sink

LabelEncoding = Literal["trainid", "labelid"]
#: What a label PNG's name ends in, per encoding (Cityscapes' own names for the two encodings).
LABEL_SUFFIXES: dict[str, str] = {"trainid": "_labelTrainIds.png", "labelid": "_labelIds.png"}

log = logging.getLogger("fornet.video")


class Sink(Protocol):
    """Where results go (see the module docstring)."""

    def write(self, result: FrameResult) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def frame_name(result: FrameResult, extension: str) -> str:
    """The frame's output name (see the module docstring) and ``extension``."""
    return f"{result.frame.output_name}{extension}"


def _encode_image(image: np.ndarray, extension: str) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(extension, image)
    if not ok:
        raise SinkError(f"OpenCV cannot encode a {extension} image; use .png or .jpg")
    return encoded.tobytes()


def _rendered(result: FrameResult, what: str) -> np.ndarray:
    if result.overlay is None:
        raise SinkError(f"{what} needs rendered frames; run the pipeline with render='overlay' or 'mask'")
    return result.overlay


class VideoFileSink:
    """Rendered frames of one source into an H.264 file (opened at the first frame, for its size).

    ``live``: stamp each frame with its capture time (from the first frame), so the video plays in
    real time and a gap of the source stays a gap; otherwise frames follow each other at ``fps``.
    ``encoder``: ``auto``, ``x264`` or ``nvenc`` (:func:`~fornet.runtime.video.encode.choose_encoder`).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = 25.0, source_id: int = 0, live: bool = False,
                 encoder: str = "auto") -> None:
        self.path = check_output_file(path, "the video output")
        ensure_writable_dir(self.path.parent if str(self.path.parent) else ".")
        remove_stale_temporaries(self.path)
        self.fps = fps
        self.source_id = source_id
        self.encoder = choose_encoder(encoder)  # the one that runs: x264 or nvenc
        self.live = live
        self._writer: H264Writer | None = None
        self._first_capture = 0.0
        self._resized = False

    def write(self, result: FrameResult) -> None:
        if result.frame.source_id != self.source_id:
            return
        image = _rendered(result, "a video output")
        if self._writer is None:
            self._writer = H264Writer(self.path, image.shape[:2], self.fps, encoder=self.encoder, timed=self.live)
            self._first_capture = result.frame.capture_monotonic
        image = self._fit(image, result)
        self._writer.write(image, result.frame.capture_monotonic - self._first_capture if self.live else None)

    def _fit(self, image: np.ndarray, result: FrameResult) -> np.ndarray:
        """``image`` at the video's size: a frame of another size is resized (and the first such is warned of)."""
        import cv2

        assert self._writer is not None
        height, width = self._writer.height, self._writer.width
        if image.shape[0] in (height, height + 1) and image.shape[1] in (width, width + 1):
            return image
        if not self._resized:
            self._resized = True
            log.warning("%s: frame %s is %dx%d, not the video's %dx%d: frames of other sizes are resized to the "
                        "video's (label PNGs and records keep each frame's own size)", self.path,
                        result.frame.output_name, image.shape[1], image.shape[0], width, height)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


class ImageFolderSink:
    """Rendered frames as ``<source>-<frame>.jpg`` (or ``.png``) files in a folder."""

    def __init__(self, folder: str | os.PathLike[str], extension: str = ".jpg") -> None:
        self.folder = ensure_writable_dir(folder)
        self.extension = extension

    def write(self, result: FrameResult) -> None:
        image = _rendered(result, "an image folder output")
        write_bytes_atomic(self.folder / frame_name(result, self.extension), _encode_image(image, self.extension))

    def close(self) -> None:
        """Every file is complete when written."""

    def abort(self) -> None:
        """Every file is complete when written."""


class LabelPngSink:
    """Labels as 8-bit PNGs: Cityscapes trainIds (0..18, 255 ignore) or labelIds (the evaluator's).

    A folder holding label PNGs of an earlier run is refused unless ``overwrite``: they are then removed
    when the first label is written (a run that fails before its first frame leaves them), so the labels
    of two runs never mix.
    """

    def __init__(self, folder: str | os.PathLike[str], encoding: LabelEncoding = "trainid",
                 overwrite: bool = False) -> None:
        if encoding not in ("trainid", "labelid"):
            raise SinkError(f"unknown label encoding {encoding!r}; choose trainid or labelid")
        folder = check_output_dir(folder, "the label folder")
        earlier = [path for suffix in LABEL_SUFFIXES.values() for path in sorted(folder.glob(f"*{suffix}"))]
        if earlier and not overwrite:
            raise SinkError(f"label folder {folder} holds {len(earlier)} label PNG(s) of an earlier run (e.g. "
                            f"{earlier[0].name}); their labels and this run's would mix: pass --overwrite to "
                            "remove them first, or choose an empty folder")
        self._earlier = earlier
        self.folder = ensure_writable_dir(folder)
        self.encoding = encoding

    def write(self, result: FrameResult) -> None:
        for path in self._earlier:
            path.unlink(missing_ok=True)
        self._earlier = []
        labels = result.labels if self.encoding == "trainid" else train_ids_to_label_ids(result.labels)
        write_bytes_atomic(self.folder / frame_name(result, LABEL_SUFFIXES[self.encoding]),
                           _encode_image(labels, ".png"))

    def close(self) -> None:
        """Every file is complete when written."""

    def abort(self) -> None:
        """Every file is complete when written."""


@dataclass(frozen=True)
class FrameLine(LineRecord):
    """One line of ``fornet run --jsonl``: a segmented frame (its source, and the image file it came from),
    when it was captured and finished, the seconds of each stage, and the pixels per class."""

    FORMAT: ClassVar[str] = "fornet-deploy/video-frame"
    VERSION: ClassVar[int] = 2
    #: Lines written before the format tag have the same fields.
    UNTAGGED_VERSION: ClassVar[int | None] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy per-frame record"
    FIX: ClassVar[str] = "run fornet run again with --jsonl"

    source: str
    source_id: int
    frame: int
    capture_time: float
    result_time: float
    age_s: float
    times: dict[str, float]
    histogram: tuple[int, ...]
    #: The image file the frame was read from (image inputs), else None.
    file: str | None = None

    @classmethod
    def upgrade(cls, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """Version 1 lines have no ``file`` (it was not recorded)."""
        return {**body, "file": None} if version == 1 else None


class JsonLinesSink:
    """One JSON object per frame (see the module docstring); ``names`` maps source ids to names (passwords
    in them are masked)."""

    def __init__(self, path: str | os.PathLike[str], names: dict[int, str], classes: int) -> None:
        self.path = check_output_file(path, "the per-frame records file")
        self.names = {source_id: mask_credentials(name) for source_id, name in names.items()}
        self.classes = classes
        self._tmp = temporary_file(self.path)
        self._file: TextIO = self._tmp.open("w", encoding="utf-8")

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        line = FrameLine(
            source=self.names.get(frame.source_id, str(frame.source_id)), source_id=frame.source_id,
            frame=frame.index, capture_time=round(frame.capture_time, 6), result_time=round(time.time(), 6),
            age_s=round(result.age_s, 6), times={stage: round(seconds, 6) for stage, seconds in result.times.items()},
            histogram=tuple(result.histogram(self.classes)), file=frame.file,
        )
        self._file.write(line.to_line())
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            publish(self._tmp, self.path)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()


class RtspSink:
    """Rendered frames of one source served over RTSP (the server starts at the first frame).

    ``address`` is ``HOST:PORT/path`` (:func:`~fornet.runtime.video.uri.parse_sink`; an empty HOST is
    ``access.host``, else 127.0.0.1); ``access`` also holds the optional login
    (:mod:`fornet.runtime.video.rtsp_access`).
    """

    def __init__(self, address: str, fps: float = 25.0, source_id: int = 0, access: RtspAccess | None = None,
                 encoder: str = "auto") -> None:
        access = access or RtspAccess()
        hostport, _, path = address.partition("/")
        host, _, port = hostport.rpartition(":")
        self.host, self.port, self.mount = access.bind_host(host), int(port), "/" + path
        self.url = f"rtsp://{self.host}:{self.port}{self.mount}"
        self._login = access.login()
        import_gst()
        self.encoder = rtsp_encoder(encoder)  # the one that runs: x264 or nvenc (Jetson)
        self.fps = fps
        self.source_id = source_id
        self._server = None

    def write(self, result: FrameResult) -> None:
        if result.frame.source_id != self.source_id:
            return
        image = _rendered(result, "an RTSP output")
        if self._server is None:
            self._server = GstRtspServer(self.host, self.port, self.mount, image.shape[:2], self.fps, self._login,
                                         self.encoder)
        self._server.push(image)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    abort = close


class DisplaySink:
    """Rendered frames of one source in an OpenCV window (needs a display and OpenCV's GUI build)."""

    def __init__(self, source_id: int = 0, title: str = "fornet") -> None:
        import cv2

        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display here (DISPLAY is not set); write a video file or rtsp://@:8554/out instead")
        self.title = f"{title} [{source_id}]"
        self.source_id = source_id
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise SinkError("this OpenCV has no GUI (pip's opencv-python-headless); install opencv-python or "
                            "use the system's OpenCV, or write a video file instead") from exc

    def write(self, result: FrameResult) -> None:
        import cv2

        if result.frame.source_id == self.source_id:
            cv2.imshow(self.title, _rendered(result, "a display output"))
            cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)

    abort = close


def open_sink(uri: str | SinkSpec, fps: float = 25.0, source_id: int = 0, rtsp: RtspAccess | None = None,
              live: bool = False, encoder: str = "auto") -> Sink:
    """The sink an output URI names (video file, image folder, ``rtsp://@:PORT/path``, ``display://``);
    ``rtsp``: the listening address and login of an RTSP output (default: 127.0.0.1, no login); ``live``:
    a video file is stamped with capture times (see :class:`VideoFileSink`); ``encoder``: the H.264 encoder
    of a video or RTSP output (``auto``, ``x264``, ``nvenc``)."""
    spec = uri if isinstance(uri, SinkSpec) else parse_sink(uri)
    if spec.kind == "video":
        return VideoFileSink(spec.location, fps, source_id, live, encoder)
    if spec.kind == "images":
        return ImageFolderSink(spec.location)
    if spec.kind == "rtsp":
        return RtspSink(spec.location, fps, source_id, rtsp, encoder)
    return DisplaySink(source_id)
