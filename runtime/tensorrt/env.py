"""What this machine offers for TensorRT work: the Python bindings and a logger.

Nothing here imports TensorRT at module import time, so ``--help`` and CPU-only machines never
need it. Every check raises a :class:`~fornet.runtime.errors.TensorRTError` that names what is
missing and how to get it. The GPU itself is CUDA's business: :mod:`fornet.runtime.cuda.device`.
"""

from __future__ import annotations

import importlib
import sys
from collections import deque
from typing import TYPE_CHECKING

from fornet.runtime.errors import TensorRTError

if TYPE_CHECKING:
    import tensorrt as trt

_INSTALL_HINT = (
    "install TensorRT's Python bindings on the target: `sudo apt install python3-libnvinfer` on Jetson "
    "(JetPack 6.1+), `pip install tensorrt` (or `pip install 'fornet-deploy[tensorrt]'`) elsewhere"
)


class TensorRTUnavailableError(TensorRTError):
    """TensorRT's Python bindings cannot be imported."""


def tensorrt_available() -> bool:
    """Whether TensorRT's Python bindings import here (type stubs alone do not count)."""
    try:
        require_tensorrt()
    except TensorRTUnavailableError:
        return False
    return True


def require_tensorrt() -> str:
    """Import the bindings or raise :class:`TensorRTUnavailableError`; return TensorRT's version.

    Callers then ``import tensorrt as trt`` locally, which keeps the module typed for mypy.
    """
    try:
        module = importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:  # OSError: bindings present, libnvinfer.so missing
        raise TensorRTUnavailableError(f"TensorRT is not importable ({exc}); {_INSTALL_HINT}") from exc
    version = getattr(module, "__version__", None)
    if not hasattr(module, "Builder") or not isinstance(version, str):
        # e.g. only the `tensorrt-stubs` typing package, which installs an empty namespace package
        raise TensorRTUnavailableError(
            f"the `tensorrt` package at {list(getattr(module, '__path__', []))} holds no bindings "
            f"(type stubs only?); {_INSTALL_HINT}"
        )
    return version


def tensorrt_version_number(version: str) -> int:
    """``"10.3.0.26"`` -> ``100300`` (the number TensorRT writes into calibration cache headers)."""
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    if len(parts) != 3:
        raise TensorRTError(f"cannot read the TensorRT version {version!r}; reinstall TensorRT")
    major, minor, patch = parts
    return major * 10000 + minor * 100 + patch


class LogTail:
    """The last TensorRT log lines, quoted in error messages when a parse or build fails."""

    def __init__(self, max_lines: int = 30) -> None:
        self._lines: deque[str] = deque(maxlen=max_lines)

    def add(self, line: str) -> None:
        """Remember one line."""
        self._lines.append(line)

    def text(self) -> str:
        """The remembered lines, oldest first, or a placeholder when TensorRT said nothing."""
        return "\n".join(self._lines) if self._lines else "(TensorRT logged nothing)"


def make_logger(tail: LogTail, *, verbose: bool = False) -> trt.ILogger:
    """A TensorRT logger that prints warnings and errors (all messages if ``verbose``) to stderr
    and keeps every message of INFO severity or worse in ``tail``."""
    import tensorrt as trt

    shown = trt.ILogger.Severity.VERBOSE if verbose else trt.ILogger.Severity.WARNING
    kept = trt.ILogger.Severity.INFO

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            line = f"[TensorRT {severity.name}] {msg}"
            if int(severity) <= int(kept):
                tail.add(line)
            if int(severity) <= int(shown):
                print(line, file=sys.stderr)

    return _Logger()
