"""A bounded frame buffer between a source's reader thread and the pipeline.

Two policies, chosen per source and never changed silently:

* ``latest`` (live sources, the default there): when full, the oldest frame is dropped to make
  room, so the consumer always gets the newest frames; drops are counted.
* ``wait`` (files, the default there): when full, the reader blocks, so every frame is delivered.

``capacity`` is 1 for ``latest`` by default and 4 for ``wait`` (``--buffer N`` overrides both).
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Policy = Literal["latest", "wait"]


class FrameBuffer(Generic[T]):
    """Bounded FIFO with a drop-oldest or blocking policy and an end marker (see the module docstring)."""

    def __init__(self, capacity: int, policy: Policy) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.policy = policy
        self.dropped = 0
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T, stop: threading.Event | None = None) -> bool:
        """Add ``item``; ``False`` if the buffer was closed (or ``stop`` set) while waiting for room."""
        with self._cond:
            if self.policy == "latest":
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not self._closed:
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(0.1)
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout`` s; ``None`` on timeout or when closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more items will come; waiting producers and consumers return."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and drained."""
        with self._cond:
            return self._closed and not self._items
