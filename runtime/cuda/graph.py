"""A CUDA graph captured from a stream, through the CUDA driver API (pycuda has no graph support).

:class:`CudaGraph` records the work one callable enqueues on a stream (e.g. TensorRT's
``execute_async_v3``) and replays it with one launch, which removes the per-kernel launch cost.
The callable must enqueue the same work on every call; buffers are captured by address. The
calling thread must have the stream's CUDA context current.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from fornet.runtime.errors import CudaError

_CAPTURE_MODE_THREAD_LOCAL = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL


def _driver() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise CudaError(f"the CUDA driver library is not loadable ({exc}); CUDA graphs need the NVIDIA driver") from exc


def _check(status: int, call: str) -> None:
    if status != 0:
        raise CudaError(f"{call} failed with CUDA driver error {status}; run without the CUDA graph option "
                        "(the engine then runs with execute_async_v3 on every call)")


class CudaGraph:
    """Capture ``enqueue`` on ``stream_handle`` once; :meth:`launch` replays it on that stream."""

    def __init__(self, stream_handle: int, enqueue: Callable[[], None]) -> None:
        self._lib = _driver()
        self._stream = ctypes.c_void_p(stream_handle)
        graph = ctypes.c_void_p()
        self._exec = ctypes.c_void_p()
        _check(self._lib.cuStreamBeginCapture_v2(self._stream, _CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture")
        try:
            enqueue()
        finally:
            ended = self._lib.cuStreamEndCapture(self._stream, ctypes.byref(graph))
        _check(ended, "cuStreamEndCapture (the enqueued work cannot be captured)")
        try:
            _check(self._lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), graph, ctypes.c_ulonglong(0)),
                   "cuGraphInstantiateWithFlags")
        finally:
            self._lib.cuGraphDestroy(graph)

    def launch(self) -> None:
        """Enqueue the captured work on the stream (asynchronous)."""
        if not self._exec:
            raise CudaError("this CUDA graph was destroyed; capture a new one")
        _check(self._lib.cuGraphLaunch(self._exec, self._stream), "cuGraphLaunch")

    def destroy(self) -> None:
        """Free the executable graph."""
        if self._exec:
            self._lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()
