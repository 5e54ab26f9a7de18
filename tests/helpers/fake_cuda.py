"""A fake of the pycuda API surface that the CUDA context, the TensorRT backend and the GPU pipeline drive.

It stands in for the *library*, so that fornet's own state machine (push/pop/detach order, what
is freed while the context is current) runs on any machine; TensorRT's fake, which runs its plans
on these streams, is :mod:`tests.helpers.fake_tensorrt`. Each rule of the real library is encoded
here, with where it comes from:

* pycuda (``src/cpp/cuda.hpp``): ``context_push`` pushes onto pycuda's per-thread context stack;
  ``context::pop`` raises "cannot pop non-current context" on an empty stack; ``context::detach``
  of the current context releases it (``primary_context::detach_internal`` calls
  ``cuDevicePrimaryCtxRelease``), marks it invalid and drops it from the stack
  (``current_context(this)``), so a later ``Context.pop()`` raises; detaching an invalid context
  raises "cannot detach from invalid context"; objects that outlive their context's release are
  cleaned up "on a dead context" (``CUDAPP_CATCH_CLEANUP_ON_DEAD_CONTEXT``).
"""

from __future__ import annotations

import threading
import types
import weakref

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
