"""Frame -> labels pipelines behind :class:`~fornet.runtime.segmenter.Segmenter`.

:class:`CpuPipeline` pre/post-processes with NumPy/OpenCV (:mod:`fornet.runtime.cpu_prepost`)
around any backend's ``infer``. :class:`GpuPipeline` runs the fused CUDA kernels around the device
buffers of a TensorRT plan or of the PyTorch model on a CUDA GPU, on one stream: frame up, pre kernel
into the model's input buffer, model, post kernel from its output buffer, labels down. A frame that
is already on the GPU (:class:`~fornet.runtime.cuda.device_array.DeviceArray`) is read where it is and
its labels and overlay stay there (:meth:`GpuPipeline.run_device`): no host round trip. Both split
the frames into chunks the model takes (its static batch, padded, or up to its largest dynamic batch)
and time the three stages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from fornet.runtime.backend import Backend
from fornet.runtime.cpu_prepost import overlay, postprocess, preprocess_frames
from fornet.runtime.cuda.device_array import DeviceArray
from fornet.runtime.cuda.prepost import GpuPrePost
from fornet.runtime.errors import CudaError
from fornet.runtime.model_io import ModelIO

FrameT = TypeVar("FrameT")


class Segmentation(NamedTuple):
    """One frame's result: uint8 labels at the frame size and, if asked for, the BGR overlay."""

    labels: np.ndarray
    overlay: np.ndarray | None


class DeviceSegmentation(NamedTuple):
    """One device frame's result, left on the GPU: uint8 labels and, if asked for, the BGR overlay.

    Both export ``__cuda_array_interface__`` (``torch.as_tensor(result.labels, device="cuda")``) and
    must not outlive the segmenter that made them.
    """

    labels: DeviceArray
    overlay: DeviceArray | None


@dataclass
class StageTimes:
    """Seconds spent per stage of one call (GPU pipeline: CUDA event times on the stream).

    ``pre`` includes the frame upload and ``post`` the labels download on the GPU pipeline.
    """

    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0


def chunks(frames: Sequence[FrameT], size: int) -> Iterator[Sequence[FrameT]]:
    """``frames`` in consecutive groups of at most ``size``."""
    for start in range(0, len(frames), size):
        yield frames[start:start + size]


class CpuPipeline:
    """CPU pre/post around ``backend.infer`` (any backend)."""

    def __init__(self, backend: Backend, io: ModelIO, batch: int | None = None) -> None:
        self.backend = backend
        self.io = io
        self.max_batch = io.batch or batch or backend.max_batch

    def run(self, frames: Sequence[np.ndarray], overlay_alpha: float | None) -> tuple[list[Segmentation], StageTimes]:
        """Segment ``frames`` (already validated)."""
        times = StageTimes()
        results: list[Segmentation] = []
        for group in chunks(frames, self.max_batch or len(frames)):
            start = time.perf_counter()
            feed = preprocess_frames(group, self.io, self.io.batch)
            inferred = time.perf_counter()
            output = self.backend.infer({self.io.input_name: feed})[self.io.output_name]
            done = time.perf_counter()
            for index, frame in enumerate(group):
                labels = postprocess(output[index], frame.shape[:2], self.io)
                drawn = None if overlay_alpha is None else overlay(frame, labels, self.io.palette_bgr, overlay_alpha)
                results.append(Segmentation(labels, drawn))
            times.pre += inferred - start
            times.infer += done - inferred
            times.post += time.perf_counter() - done
        return results, times

    def close(self) -> None:
        """Nothing to free."""


@runtime_checkable
class DeviceBuffers(Protocol):
    """What the GPU pipeline needs of a backend whose I/O tensors live in device memory (``GPU_PREPOST``)."""

    @property
    def cuda_context(self) -> Any: ...

    @property
    def stream(self) -> Any: ...

    @property
    def max_batch(self) -> int | None: ...

    def device_pointer(self, name: str) -> int: ...

    def set_batch(self, batch: int) -> None: ...

    def output_shape(self, name: str) -> tuple[int, ...]: ...

    def enqueue(self) -> None: ...


class GpuPipeline:
    """The CUDA pre/post kernels around a backend's device buffers (see the module docstring)."""

    def __init__(self, backend: DeviceBuffers, io: ModelIO, batch: int | None = None) -> None:
        self.backend = backend
        self.io = io
        self.max_batch = io.batch or batch or backend.max_batch
        self._cuda = backend.cuda_context
        with self._cuda:
            driver = self._cuda.driver
            self._kernels: GpuPrePost | None = GpuPrePost(driver, io)
            try:
                self._events: list[Any] = [driver.Event() for _ in range(4)]
            except BaseException:
                self._kernels.free()
                raise
        self._input_bytes = int(np.prod(io.input_shape(1))) * io.input_dtype.itemsize

    def run(self, frames: Sequence[np.ndarray | DeviceArray], overlay_alpha: float | None
            ) -> tuple[list[Segmentation], StageTimes]:
        """Segment ``frames`` (already validated; host or device); the results come back to the host."""
        results, times = self._run(frames, overlay_alpha, keep_on_device=False)
        return [Segmentation(*cast("tuple[np.ndarray, np.ndarray | None]", result)) for result in results], times

    def run_device(self, frames: Sequence[np.ndarray | DeviceArray], overlay_alpha: float | None
                   ) -> tuple[list[DeviceSegmentation], StageTimes]:
        """Segment ``frames`` (already checked); the results stay on the GPU."""
        results, times = self._run(frames, overlay_alpha, keep_on_device=True)
        return [DeviceSegmentation(*cast("tuple[DeviceArray, DeviceArray | None]", result))
                for result in results], times

    def _run(self, frames: Sequence[np.ndarray | DeviceArray], overlay_alpha: float | None, keep_on_device: bool
             ) -> tuple[list[tuple[np.ndarray | DeviceArray, np.ndarray | DeviceArray | None]], StageTimes]:
        times = StageTimes()
        results: list[tuple[np.ndarray | DeviceArray, np.ndarray | DeviceArray | None]] = []
        stream = self.backend.stream
        kernels = self._kernels
        if kernels is None:
            raise CudaError("this GPU pipeline was closed; create a new Segmenter")
        with self._cuda:
            for group in chunks(frames, self.max_batch or len(frames)):
                self.backend.set_batch(self.io.batch or len(group))
                source = self.backend.device_pointer(self.io.output_name)
                out_shape = self.backend.output_shape(self.io.output_name)
                out_bytes = int(np.prod(out_shape[1:])) * self.io.output_dtype.itemsize
                out_hw = (out_shape[-2], out_shape[-1])
                target = self.backend.device_pointer(self.io.input_name)
                self._events[0].record(stream)
                for index, frame in enumerate(group):
                    kernels.preprocess(index, frame, target + index * self._input_bytes, stream)
                self._events[1].record(stream)
                self.backend.enqueue()
                self._events[2].record(stream)
                for index, frame in enumerate(group):
                    kernels.postprocess(index, source + index * out_bytes, out_hw, (frame.shape[0], frame.shape[1]),
                                        overlay_alpha, stream, keep_on_device)
                self._events[3].record(stream)
                stream.synchronize()
                results += [kernels.results(index, (frame.shape[0], frame.shape[1]), overlay_alpha is not None)
                            for index, frame in enumerate(group)]
                times.pre += self._events[1].time_since(self._events[0]) / 1000
                times.infer += self._events[2].time_since(self._events[1]) / 1000
                times.post += self._events[3].time_since(self._events[2]) / 1000
        return results, times

    def close(self) -> None:
        """Free the kernels' buffers and module and the CUDA events, with the context current (idempotent).

        pycuda frees an event or a module when its last reference goes; dropped here, inside the
        context, none of them outlives the context the backend releases next.
        """
        if self._kernels is None:
            return
        kernels, self._kernels = self._kernels, None
        with self._cuda:
            try:
                kernels.free()
            finally:
                self._events = []
