"""What this machine offers for TensorRT work: the Python bindings, a CUDA GPU, a logger.

Nothing here imports TensorRT at module import time, so ``--help`` and CPU-only machines never
need it. Every check raises a :class:`~fornet.errors.FornetError` subclass that names what is
missing and how to get it.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fornet.errors import FornetError
from fornet.runtime.errors import TensorRTError

if TYPE_CHECKING:
    import tensorrt as trt

_INSTALL_HINT = (
    "install TensorRT's Python bindings on the target: `sudo apt install python3-libnvinfer` on Jetson "
    "(JetPack 6.1+), `pip install tensorrt` (or `pip install 'fornet-deploy[tensorrt]'`) elsewhere"
)


class TensorRTUnavailableError(TensorRTError):
    """TensorRT's Python bindings cannot be imported."""


class NoGpuError(TensorRTError):
    """No CUDA driver or no CUDA device is present."""


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
        raise FornetError(f"cannot read the TensorRT version {version!r}; reinstall TensorRT")
    major, minor, patch = parts
    return major * 10000 + minor * 100 + patch


@dataclass(frozen=True)
class CudaDevice:
    """The GPU TensorRT builds for: device 0 of the CUDA driver."""

    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        """``"87"`` for (8, 7): the value for CMake's CUDA architectures and nvcc's ``sm_``."""
        return f"{self.compute_capability[0]}{self.compute_capability[1]}"


_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


def cuda_device() -> CudaDevice:
    """Query device 0 through the CUDA driver library (no pycuda or torch needed).

    Raises:
        NoGpuError: no driver library or no device.
    """
    library = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(library)
    except OSError as exc:
        raise NoGpuError(
            f"no CUDA driver ({library} not loadable: {exc}); TensorRT engines are built and run on the "
            "target GPU: run this on the Jetson / GPU machine with the NVIDIA driver installed"
        ) from exc
    count = ctypes.c_int(0)
    device = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        raise NoGpuError(
            "the CUDA driver reports no usable GPU (check `nvidia-smi` / `tegrastats`, the driver and "
            "CUDA_VISIBLE_DEVICES); TensorRT needs one to build or run engines"
        )
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    cuda.cuDeviceGet(ctypes.byref(device), 0)
    cuda.cuDeviceGetName(name, len(name), device)
    cuda.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
    return CudaDevice(name=name.value.decode(errors="replace"), compute_capability=(major.value, minor.value))


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
