"""One view of a frame or label map in device memory, shared by pycuda, PyTorch, CuPy and the decoder.

A frame that already lives on the GPU (a PyTorch CUDA tensor, a CuPy array, an NVDEC frame) reaches
the GPU pipeline as a :class:`DeviceArray`: its address, shape, byte strides and dtype, read from the
`CUDA array interface <https://numba.readthedocs.io/en/stable/cuda/cuda_array_interface.html>`_
(version 3) or, for objects that only speak DLPack, through ``torch.from_dlpack``. Nothing is copied:
the pre kernel reads the frame where it is, row pitch included.

Results go the other way: labels and overlays of device frames stay on the GPU as :class:`DeviceArray`
objects that export ``__cuda_array_interface__``, so ``torch.as_tensor(labels, device="cuda")`` or
``cupy.asarray(labels)`` take them without a copy. They own their memory (a pycuda allocation) and
must not outlive the :class:`~fornet.runtime.segmenter.Segmenter` that made them: clone what you keep.

The interface's ``stream`` entry is honoured: a producer stream other than "no synchronisation
needed" is synchronised (CUDA driver ``cuStreamSynchronize``) before the frame is read.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from fornet.runtime.cuda.device import cuda_driver
from fornet.runtime.errors import CudaError

#: DLPack's device type of CUDA memory (``kDLCUDA``) and of CUDA managed memory (``kDLCUDAManaged``).
_DLPACK_CUDA = (2, 13)


class DeviceFrameError(CudaError):
    """A device array that is not a frame the GPU pipeline reads (dtype, shape, layout)."""


@dataclass(frozen=True)
class DeviceArray:
    """A C-ordered or pitched array in device memory (see the module docstring).

    Attributes:
        pointer: the device address of element ``[0, 0, ...]``.
        shape: the array's shape.
        dtype: its NumPy dtype.
        strides: byte strides per dimension.
        owner: what keeps the memory alive (a pycuda allocation, the producer's object).
        stream: the producer's stream handle to synchronise before reading (``None``: ready).
    """

    pointer: int
    shape: tuple[int, ...]
    dtype: np.dtype
    strides: tuple[int, ...]
    owner: Any = None
    stream: int | None = None

    @classmethod
    def contiguous(cls, pointer: int, shape: tuple[int, ...], dtype: np.dtype, owner: Any) -> DeviceArray:
        """A C-contiguous array of ``shape`` at ``pointer``, ready to read."""
        strides = tuple(int(np.prod(shape[index + 1:])) * dtype.itemsize for index in range(len(shape)))
        return cls(pointer, shape, dtype, strides, owner)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """Version 3 of the interface; ``stream`` None: no synchronisation needed (results are ready)."""
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.pointer, False),
                "strides": self.strides, "version": 3, "stream": self.stream}

    @property
    def nbytes(self) -> int:
        """Bytes of the elements (not of the padding between pitched rows)."""
        return int(np.prod(self.shape)) * self.dtype.itemsize


def is_device_array(value: object) -> bool:
    """Whether ``value`` lives in device memory (CUDA array interface, or a DLPack CUDA device)."""
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    device = getattr(value, "__dlpack_device__", None)
    if device is None:
        return False
    try:
        return int(device()[0]) in _DLPACK_CUDA
    except Exception:  # a __dlpack_device__ that fails is not a device array we can read
        return False


def device_array_of(value: object) -> DeviceArray:
    """The :class:`DeviceArray` view of a device object, keeping the object alive (no copy).

    Raises:
        DeviceFrameError: ``value`` exports neither interface or exports a malformed one.
    """
    interface = getattr(value, "__cuda_array_interface__", None)
    if interface is None and hasattr(value, "__dlpack__"):
        try:
            import torch
        except ImportError as exc:
            raise DeviceFrameError(f"a {type(value).__name__} exports only DLPack, which is read through PyTorch: "
                                   "pip install torch, or pass a tensor with __cuda_array_interface__") from exc
        value = torch.from_dlpack(value)  # a CUDA tensor, which exports the array interface
        interface = getattr(value, "__cuda_array_interface__", None)
    if not isinstance(interface, dict):
        raise DeviceFrameError(f"a {type(value).__name__} exports neither __cuda_array_interface__ nor a CUDA "
                               "__dlpack__; pass a PyTorch CUDA tensor, a CuPy array or a NumPy array")
    try:
        pointer, _read_only = interface["data"]
        shape = tuple(int(size) for size in interface["shape"])
        dtype = np.dtype(interface["typestr"])
        given = interface.get("strides")
        stream = interface.get("stream")
    except (KeyError, TypeError, ValueError) as exc:
        raise DeviceFrameError(f"the __cuda_array_interface__ of a {type(value).__name__} is malformed ({exc}); "
                               "see the CUDA array interface, version 3") from exc
    dense = DeviceArray.contiguous(int(pointer or 0), shape, dtype, value)
    strides = dense.strides if given is None else tuple(int(step) for step in given)
    if len(strides) != len(shape):
        raise DeviceFrameError(f"the __cuda_array_interface__ of a {type(value).__name__} gives {len(strides)} "
                               f"strides for {len(shape)} dimensions")
    return DeviceArray(dense.pointer, shape, dtype, strides, value, None if stream in (None, 0) else int(stream))


def check_device_frame(frame: DeviceArray, what: str = "frame") -> DeviceArray:
    """``frame`` if the pre kernel reads it: uint8 ``H x W x 3`` with pixels interleaved (rows may be pitched).

    Raises:
        DeviceFrameError: naming the conversion that makes it readable.
    """
    if frame.dtype != np.uint8:
        raise DeviceFrameError(f"device {what} has dtype {frame.dtype}; pass the uint8 BGR frame as decoded "
                               "(0..255), before any normalisation")
    if len(frame.shape) != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DeviceFrameError(f"device {what} has shape {frame.shape}; pass an HxWx3 BGR frame with channels last "
                               "(e.g. tensor.permute(1, 2, 0) of a CHW tensor, then .contiguous())")
    row, pixel, channel = frame.strides
    if channel != 1 or pixel != 3 or row < 3 * frame.shape[1]:
        raise DeviceFrameError(f"device {what} has byte strides {frame.strides}; the pre kernel reads interleaved "
                               "pixels (strides (pitch, 3, 1)): pass tensor.contiguous()")
    if frame.pointer == 0:
        raise DeviceFrameError(f"device {what} has a null address; pass an allocated array")
    return frame


def synchronize_stream(handle: int) -> None:
    """Wait for the producer stream ``handle`` (a ``CUstream``; 1 and 2 are the legacy and per-thread default)."""
    status = cuda_driver().cuStreamSynchronize(ctypes.c_void_p(handle))
    if status != 0:
        raise CudaError(f"cuStreamSynchronize on the frame's producer stream failed (CUresult {status}); the "
                        "producer's CUDA work failed or its stream was destroyed")
