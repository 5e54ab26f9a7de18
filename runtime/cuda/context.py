"""pycuda, imported lazily, and the primary CUDA context of one GPU with balanced push/pop.

``pycuda.autoinit`` creates a context that is current on the importing thread only, so work
submitted from another thread fails with "invalid device context". :class:`CudaContext` retains
the device's *primary* context (the one the CUDA runtime, TensorRT and PyTorch share) and makes
it current for the duration of a ``with`` block on whichever thread enters it; blocks nest.

pycuda has no type stubs: it is handled as ``Any`` (imported through :mod:`importlib`), so the
modules that use it still type-check strictly.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from fornet.runtime.cuda.device import NoGpuError
from fornet.runtime.errors import CudaError

_log = logging.getLogger(__name__)

_PYCUDA_HINT = ("install it on the GPU machine with `pip install pycuda` (it builds against the CUDA toolkit: "
                "nvcc and the CUDA headers must be on PATH; on Jetson export PATH=/usr/local/cuda/bin:$PATH "
                "first) or `pip install 'fornet-deploy[tensorrt]'`; or use the ONNX Runtime backend")


class PycudaUnavailableError(CudaError):
    """pycuda is not installed (or not importable)."""


def require_pycuda() -> Any:
    """``pycuda.driver``, or :class:`PycudaUnavailableError` / :class:`NoGpuError` naming the fix."""
    try:
        return importlib.import_module("pycuda.driver")
    except ImportError as exc:
        if "libcuda" in str(exc):
            raise NoGpuError(f"pycuda is installed but the CUDA driver is not loadable ({exc}); run on a machine "
                             "with an NVIDIA GPU and its driver (check `nvidia-smi` or `tegrastats`)") from exc
        raise PycudaUnavailableError(f"pycuda is not importable ({exc}); {_PYCUDA_HINT}") from exc


class CudaContext:
    """The primary context of GPU ``device``, current inside ``with context:`` on any thread.

    Raises:
        PycudaUnavailableError: no pycuda.
        NoGpuError: no driver, no GPU, or no GPU with that index.
    """

    def __init__(self, device: int = 0) -> None:
        cuda = require_pycuda()
        self._cuda = cuda
        try:
            cuda.init()
            count = cuda.Device.count()
        except cuda.Error as exc:
            raise NoGpuError(f"the CUDA driver reports no usable GPU ({exc}); check `nvidia-smi` / `tegrastats`, "
                             "the driver and CUDA_VISIBLE_DEVICES") from exc
        if not 0 <= device < count:
            raise NoGpuError(f"GPU {device} does not exist: the CUDA driver sees {count} GPU(s); pass device=0"
                             f"{f'..{count - 1}' if count > 1 else ''}")
        self.device = cuda.Device(device)
        self.name: str = self.device.name()
        self.compute_capability: tuple[int, int] = tuple(self.device.compute_capability())
        self._context: Any = self.device.retain_primary_context()
        self._depth = threading.local()

    @property
    def driver(self) -> Any:
        """The ``pycuda.driver`` module."""
        return self._cuda

    def __enter__(self) -> CudaContext:
        if self._context is None:
            raise CudaError("this CUDA context was released; create a new one")
        self._context.push()
        self._depth.count = self._entered() + 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._depth.count = self._entered() - 1
        self._cuda.Context.pop()

    def _entered(self) -> int:
        """How many ``with`` blocks of this object the calling thread is inside."""
        return int(getattr(self._depth, "count", 0))

    def release(self) -> None:
        """Release this object's hold on the primary context (idempotent).

        Call it *outside* ``with context:``, after everything allocated in the context was freed.
        pycuda's ``context.detach()`` of a retained primary context calls
        ``cuDevicePrimaryCtxRelease`` and drops the context from pycuda's own context stack, so a
        ``Context.pop()`` after it raises "cannot pop non-current context" (pycuda
        ``src/cpp/cuda.hpp``, ``context::detach`` and ``context::pop``): pop first, then release,
        the order ``pycuda.autoprimaryctx`` uses.

        Raises:
            CudaError: called inside ``with context:`` on this thread.
        """
        if self._context is None:
            return
        if self._entered():
            raise CudaError("release() inside `with context:` would leave pycuda's context stack without the "
                            "context the block pops; leave the block first")
        context, self._context = self._context, None
        context.detach()

    def close(self, free: Callable[[], None]) -> None:
        """Run ``free`` with the context current, then release it, even when ``free`` fails.

        The first error is raised; a release error after it is logged, never raised in its place.
        """
        if self._context is None:
            return
        try:
            with self:
                free()
        except BaseException:
            release_quietly(self)
            raise
        self.release()


def release_quietly(context: CudaContext) -> None:
    """Release ``context`` while an earlier error propagates: a failure here is logged, not raised."""
    try:
        context.release()
    except Exception as exc:  # the caller is already raising the error that matters
        _log.warning("releasing the CUDA context after an earlier error also failed: %s", exc)
