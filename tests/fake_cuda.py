"""Fakes of the pycuda and TensorRT Python API surface that the TensorRT backend drives.

They stand in for the *libraries*, so that the backend's own state machine (push/pop/detach order,
what is freed while the context is current, when a CUDA graph is captured) runs on any machine.
Each fake encodes the real library's rule and says where the rule comes from:

* pycuda (``src/cpp/cuda.hpp``): ``context_push`` pushes onto pycuda's per-thread context stack;
  ``context::pop`` raises "cannot pop non-current context" on an empty stack; ``context::detach``
  of the current context releases it (``primary_context::detach_internal`` calls
  ``cuDevicePrimaryCtxRelease``), marks it invalid and drops it from the stack
  (``current_context(this)``), so a later ``Context.pop()`` raises; detaching an invalid context
  raises "cannot detach from invalid context"; objects that outlive their context's release are
  cleaned up "on a dead context" (``CUDAPP_CATCH_CLEANUP_ON_DEAD_CONTEXT``).
* TensorRT / trtexec (``sampleInference.cpp``): after ``set_input_shape`` the first
  ``execute_async_v3`` must not be captured into a CUDA graph, and the stream is synchronised
  before capture; a graph replays the shapes it was captured with.
"""

from __future__ import annotations

import enum
import threading
import types
import weakref
from typing import Any

import numpy as np


class FakeCudaError(Exception):
    """``pycuda.driver.Error``."""


class FakeLogicError(FakeCudaError):
    """``pycuda.driver.LogicError``."""


class CudaWorld:
    """The state of one fake driver: the context stack per thread, live objects, a call log."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.log: list[str] = []
        self.live: set[int] = set()  # ids of allocations, streams, events, modules not yet freed
        self.dead_context_cleanups: list[str] = []
        self.retained = 0  # primary-context reference count
        self.streams: weakref.WeakValueDictionary[int, FakeStream] = weakref.WeakValueDictionary()

    def stack(self) -> list[FakeContext]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        stack: list[FakeContext] = self.local.stack
        return stack

    def current(self) -> FakeContext | None:
        stack = self.stack()
        return stack[-1] if stack else None


class FakeContext:
    """A retained primary context (pycuda ``primary_context``)."""

    def __init__(self, world: CudaWorld) -> None:
        self.world = world
        self.valid = True
        world.retained += 1

    def push(self) -> None:
        self.world.stack().append(self)
        self.world.log.append("push")

    def detach(self) -> None:
        world = self.world
        if not self.valid:
            raise FakeLogicError("context::detach failed: invalid context - cannot detach from invalid context")
        world.log.append("detach")
        world.retained -= 1  # cuDevicePrimaryCtxRelease
        self.valid = False
        stack = world.stack()
        while stack and (stack[-1] is self or not stack[-1].valid):  # current_context(this) drops it
            stack.pop()

    @staticmethod
    def pop_current(world: CudaWorld) -> None:
        stack = world.stack()
        if not stack:
            raise FakeLogicError("context::pop failed: invalid context - cannot pop non-current context")
        stack.pop()
        world.log.append("pop")


class _ContextBound:
    """An object created in the current context, freed explicitly or when dropped."""

    kind = "object"

    def __init__(self, world: CudaWorld) -> None:
        context = world.current()
        if context is None or not context.valid:
            raise FakeLogicError(f"{self.kind}: no currently active context?")
        self.world = world
        self.context = context
        self.freed = False
        world.live.add(id(self))

    def free(self) -> None:
        if self.freed:
            return
        self.freed = True
        self.world.live.discard(id(self))
        if not self.context.valid:
            self.world.dead_context_cleanups.append(self.kind)

    def __del__(self) -> None:
        self.free()


class FakeAllocation(_ContextBound):
    kind = "DeviceAllocation"
    _next = 0x10000

    def __init__(self, world: CudaWorld, nbytes: int) -> None:
        super().__init__(world)
        FakeAllocation._next += max(256, (nbytes + 255) // 256 * 256)
        self.address = FakeAllocation._next

    def __int__(self) -> int:
        return self.address


class FakeStream(_ContextBound):
    """A stream that knows whether work is pending (for the synchronise-before-capture rule)."""

    kind = "Stream"

    def __init__(self, world: CudaWorld) -> None:
        super().__init__(world)
        self.handle = 0x5000 + len(world.streams)
        self.pending = False
        world.streams[self.handle] = self

    def synchronize(self) -> None:
        self.pending = False
        self.world.log.append("synchronize")


class FakeEvent(_ContextBound):
    kind = "Event"

    def record(self, stream: FakeStream) -> None:
        pass

    def time_since(self, other: FakeEvent) -> float:
        return 0.0


def make_fake_pycuda(world: CudaWorld) -> tuple[types.ModuleType, types.ModuleType]:
    """``(pycuda, pycuda.driver)`` modules backed by ``world``."""
    driver = types.ModuleType("pycuda.driver")
    driver.Error = FakeCudaError
    driver.LogicError = FakeLogicError
    driver.init = lambda: None

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        @staticmethod
        def count() -> int:
            return 1

        def name(self) -> str:
            return "Fake GPU"

        def compute_capability(self) -> tuple[int, int]:
            return (8, 7)

        def retain_primary_context(self) -> FakeContext:
            return FakeContext(world)

    class Context:
        @staticmethod
        def pop() -> None:
            FakeContext.pop_current(world)

    driver.Device = Device
    driver.Context = Context
    driver.Stream = lambda: FakeStream(world)
    driver.Event = lambda: FakeEvent(world)
    driver.mem_alloc = lambda nbytes: FakeAllocation(world, int(nbytes))
    driver.pagelocked_empty = lambda count, dtype: np.zeros(count, dtype)

    def memcpy_htod_async(dst: FakeAllocation, src: np.ndarray, stream: FakeStream) -> None:
        stream.pending = True

    def memcpy_dtoh_async(dst: np.ndarray, src: FakeAllocation, stream: FakeStream) -> None:
        stream.pending = True

    driver.memcpy_htod_async = memcpy_htod_async
    driver.memcpy_dtoh_async = memcpy_dtoh_async
    package = types.ModuleType("pycuda")
    package.driver = driver
    return package, driver


# ------------------------------------------------------------------ TensorRT

class TrtWorld:
    """What the fake TensorRT saw and how it behaves."""

    def __init__(self, cuda_world: CudaWorld, *, deserialize_ok: bool = True, log_on_failure: str = "") -> None:
        self.cuda_world = cuda_world
        self.deserialize_ok = deserialize_ok
        self.log_on_failure = log_on_failure
        self.host_code_allowed_at_deserialize: bool | None = None
        self.executions: list[tuple[int, bool]] = []  # (batch, captured)
        self.capturing: FakeStream | None = None


class FakeExecutionContext:
    """``IExecutionContext`` of a plan with input ``image`` (N x 3 x 4 x 4, N in 1..4) and output ``out``."""

    def __init__(self, trt_world: TrtWorld) -> None:
        self.trt_world = trt_world
        self.batch = 1
        self.shape_changed = True  # nothing executed since the last set_input_shape
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        if not 1 <= shape[0] <= 4:
            return False
        self.batch = shape[0]
        self.shape_changed = True
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (self.batch, 3, 4, 4) if name == "image" else (self.batch, 4, 4)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        world = self.trt_world
        captured = world.capturing is not None
        if captured:
            assert not self.shape_changed, (
                "captured the first execution after set_input_shape (trtexec enqueues once uncaptured first)")
            assert world.capturing is not None and not world.capturing.pending, (
                "captured without synchronising the stream first")
        self.shape_changed = False
        world.executions.append((self.batch, captured))
        if not captured:
            world.cuda_world.streams[stream_handle].pending = True
        return True


class FakeEngine:
    def __init__(self, trt_world: TrtWorld, mode: Any, dtype: Any) -> None:
        self.trt_world = trt_world
        self.num_io_tensors = 2
        self._mode = mode
        self._dtype = dtype

    def get_tensor_name(self, index: int) -> str:
        return ("image", "out")[index]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, 3, 4, 4) if name == "image" else (-1, 4, 4)

    def get_tensor_dtype(self, name: str) -> Any:
        return self._dtype.FLOAT if name == "image" else self._dtype.UINT8

    def get_tensor_mode(self, name: str) -> Any:
        return self._mode.INPUT if name == "image" else self._mode.OUTPUT

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[tuple[int, ...], ...]:
        return ((1, 3, 4, 4), (1, 3, 4, 4), (4, 3, 4, 4))

    def create_execution_context(self) -> FakeExecutionContext:
        return FakeExecutionContext(self.trt_world)


def make_fake_tensorrt(trt_world: TrtWorld, version: str = "10.3.0.26") -> types.ModuleType:
    """A ``tensorrt`` module with the run-side API the backend uses."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    mode = enum.Enum("TensorIOMode", ["INPUT", "OUTPUT"])
    dtype = enum.Enum("DataType", ["FLOAT", "HALF", "UINT8", "INT32"])
    trt.TensorIOMode = mode
    trt.DataType = dtype

    class ILogger:
        class Severity(enum.IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            pass

    class Runtime:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger
            self.engine_host_code_allowed = False  # TensorRT's default (NvInferRuntime.h)

        def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
            trt_world.host_code_allowed_at_deserialize = self.engine_host_code_allowed
            if not trt_world.deserialize_ok:
                self.logger.log(ILogger.Severity.ERROR, trt_world.log_on_failure)
                return None
            return FakeEngine(trt_world, mode, dtype)

    trt.ILogger = ILogger
    trt.Runtime = Runtime
    trt.Builder = object  # what tells real bindings from type stubs (fornet.runtime.tensorrt.env)
    trt.init_libnvinfer_plugins = lambda logger, namespace: True
    return trt


class FakeCudaGraph:
    """``fornet.runtime.cuda.graph.CudaGraph`` without libcuda: captures by calling ``enqueue`` in capture mode."""

    def __init__(self, trt_world: TrtWorld, stream: FakeStream, context: FakeExecutionContext,
                 enqueue: Any) -> None:
        self.trt_world = trt_world
        self.context = context
        trt_world.capturing = stream
        try:
            enqueue()
        finally:
            trt_world.capturing = None
        self.batch = context.batch
        self.destroyed = False

    def launch(self) -> None:
        assert not self.destroyed, "launched a destroyed graph"
        assert self.context.batch == self.batch, "replayed a graph captured for other input shapes"
        assert not self.context.shape_changed, "replayed a graph right after set_input_shape"
        self.trt_world.executions.append((self.batch, True))

    def destroy(self) -> None:
        self.destroyed = True
