"""Test hook: kill the process at a named point (``FORNET_FAULT_POINT``).

The fault-injection tests run real ``fornet`` commands in a subprocess with
``FORNET_FAULT_POINT=<name>`` (or ``<name>@<n>`` for the n-th time the point is reached); when
the running code reaches :func:`fault_point` with that name, the process sends itself SIGKILL:
no ``finally`` block, no ``atexit``, exactly what a power cut or the OOM killer does. Without
the variable the hook is one dictionary lookup. It is a test hook only; nothing in normal use
sets the variable.
"""

from __future__ import annotations

import os
import signal

#: The environment variable naming the point to die at.
FAULT_ENV = "FORNET_FAULT_POINT"
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """SIGKILL this process if ``FORNET_FAULT_POINT`` names ``name`` (and this is the chosen hit)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
