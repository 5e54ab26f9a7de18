"""Noticing a silent source and spacing the reconnection attempts.

No reader notices a hung source by itself: a frozen RTSP server gives OpenCV stale "successful"
reads and GStreamer no bus message at all, and a killed one looks like an ordinary end of file to
PyAV and GStreamer. :class:`Watchdog` therefore only asks "when did the last new frame arrive?",
and :class:`Backoff` spaces the attempts to reopen the source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class Watchdog:
    """Expires when no frame was fed for ``timeout_s`` seconds (``None``: never)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.last = time.monotonic()

    def feed(self) -> None:
        """A new frame arrived."""
        self.last = time.monotonic()

    @property
    def silence_s(self) -> float:
        """Seconds since the last frame."""
        return time.monotonic() - self.last

    def expired(self) -> bool:
        """Whether the source has been silent for longer than the timeout."""
        return self.timeout_s is not None and self.silence_s > self.timeout_s


@dataclass
class Backoff:
    """Exponential delays between reconnection attempts, with an optional limit on their number.

    ``next_delay()`` returns ``initial_s``, then doubles up to ``max_s``; ``reset()`` after a frame
    arrives again. ``exhausted`` is true once ``limit`` attempts were made without success
    (``limit=None``: never; ``0``: no reconnection at all).
    """

    initial_s: float = 0.5
    max_s: float = 8.0
    factor: float = 2.0
    limit: int | None = None
    attempts: int = 0

    def next_delay(self) -> float:
        """The pause before the next attempt (and count the attempt)."""
        delay = min(self.max_s, self.initial_s * self.factor ** self.attempts)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """The source delivers again: start over at ``initial_s``."""
        self.attempts = 0

    @property
    def exhausted(self) -> bool:
        """No attempts left."""
        return self.limit is not None and self.attempts >= self.limit
