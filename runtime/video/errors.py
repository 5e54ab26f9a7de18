"""Exceptions of :mod:`fornet.runtime.video`; each message names the problem and the fix."""

from fornet.runtime.errors import FornetRuntimeError


class VideoError(FornetRuntimeError):
    """A video source, sink or pipeline that cannot be used as asked."""


class SourceError(VideoError):
    """An input that cannot be opened or read (missing file, corrupt video, absent camera, bad URI)."""


class SinkError(VideoError):
    """An output that cannot be written (unwritable folder, unknown kind, missing encoder)."""
