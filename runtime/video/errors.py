"""Exceptions of :mod:`fornet.runtime.video`; each message names the problem and the fix.

Messages repeat URLs (ours and those in library errors), so every message is stored with the
passwords masked (:func:`fornet.redact.mask_credentials`).
"""

from fornet.redact import mask_credentials
from fornet.runtime.errors import FornetRuntimeError


class VideoError(FornetRuntimeError):
    """A video source, sink or pipeline that cannot be used as asked."""

    def __init__(self, message: str) -> None:
        super().__init__(mask_credentials(message))


class SourceError(VideoError):
    """An input that cannot be opened or read (missing file, corrupt video, absent camera, bad URI)."""


class SinkError(VideoError):
    """An output that cannot be written (unwritable folder, unknown kind, missing encoder)."""
