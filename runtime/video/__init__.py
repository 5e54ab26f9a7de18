"""Video pipelines: cameras, files and streams in; overlays, labels and records out.

* :class:`VideoSource` (:mod:`.sources`): an input by URI with live/file semantics, watchdog and reconnection.
* sinks (:mod:`.sinks`): :func:`open_sink` for video files, image folders, RTSP (:class:`RtspAccess`: its
  address and login) and a window; :class:`LabelPngSink`, :class:`JsonLinesSink`.
* :class:`VideoPipeline` (:mod:`.pipeline`): decode, segmentation and rendering overlapped in threads.

See ``docs/video.md``.
"""

from fornet.runtime.video.errors import SinkError, SourceError, VideoError
from fornet.runtime.video.frames import Frame, FrameResult
from fornet.runtime.video.pipeline import VideoPipeline
from fornet.runtime.video.rtsp_access import RtspAccess
from fornet.runtime.video.sinks import (
    ImageFolderSink,
    JsonLinesSink,
    LabelPngSink,
    Sink,
    VideoFileSink,
    open_sink,
)
from fornet.runtime.video.sources import VideoSource
from fornet.runtime.video.stats import PipelineReport

__all__ = [
    "Frame",
    "FrameResult",
    "ImageFolderSink",
    "JsonLinesSink",
    "LabelPngSink",
    "PipelineReport",
    "RtspAccess",
    "Sink",
    "SinkError",
    "SourceError",
    "VideoError",
    "VideoFileSink",
    "VideoPipeline",
    "VideoSource",
    "open_sink",
]
