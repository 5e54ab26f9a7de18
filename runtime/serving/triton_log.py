"""Triton's start-up messages about CUDA, NVML and DCGM, hidden when the model runs on the CPU.

Triton probes the GPU at start whatever the model needs; on a machine without one (or a driver too
old) it prints errors such as ``CudaDriverHelper has not been initialized`` and ``Failed to initialize
NVML`` and then serves fine. When the served model runs on the CPU these lines say nothing useful,
so :class:`GpuProbeFilter` drops them from the server's output and says once that it did.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

#: Lines Triton prints when its GPU probes fail (pinned memory, CUDA pool, driver helper, NVML, DCGM).
GPU_PROBE_LINE = re.compile(r"pinned memory pool will not be available|CUDA memory pool disabled|"
                            r"CudaDriverHelper has not been initialized|Failed to initialize NVML|DCGM unable to start")
#: The one line said instead of them.
NOTICE = ("Triton found no usable GPU (the model runs on the CPU): its CUDA/NVML start-up messages are not shown; "
          "they do not affect serving\n")


class GpuProbeFilter:
    """A text stream that passes everything on to ``stream`` except :data:`GPU_PROBE_LINE` lines.

    Whole lines are judged (text arrives in pieces from Triton's output reader), and the first line
    dropped is replaced by :data:`NOTICE`. Safe to write from several threads (PyTriton's reader and
    the server's own messages).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.dropped = 0
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Pass on the complete lines of ``text`` (with what came before) that are not GPU probe errors."""
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            self._pass_on(lines)
        return len(text)

    def _pass_on(self, lines: list[str]) -> None:
        for line in lines:
            if GPU_PROBE_LINE.search(line) is None:
                self.stream.write(line + "\n")
            else:
                self.dropped += 1
                if self.dropped == 1:
                    self.stream.write(NOTICE)

    def flush(self) -> None:
        """Flush the stream (a partial line waits for its end)."""
        self.stream.flush()

    def finish(self) -> None:
        """Pass on a last line that never got its end."""
        if self._partial:
            self.write("\n")
        self.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


@contextlib.contextmanager
def gpu_probe_errors_hidden(hide: bool) -> Iterator[None]:
    """While open, standard output (where PyTriton copies Triton's log) drops Triton's GPU probe errors when
    ``hide`` (the model runs on the CPU); otherwise it changes nothing."""
    if not hide:
        yield
        return
    original = sys.stdout
    hidden = GpuProbeFilter(original)
    sys.stdout = hidden  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = original
        hidden.finish()
