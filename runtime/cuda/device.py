"""The GPU of this machine as the CUDA driver reports it (through ``ctypes``: no pycuda or torch).

:func:`cuda_device` is what the TensorRT build, the plugin build and the benchmark's environment
record ask about the GPU; :class:`NoGpuError` is the one error for "no driver or no device".
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

from fornet.runtime.errors import CudaError


class NoGpuError(CudaError):
    """No CUDA driver or no CUDA device is present."""


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


def cuda_driver() -> ctypes.CDLL:
    """The CUDA driver library (``libcuda``), loaded through ``ctypes``.

    Raises:
        NoGpuError: no driver library.
    """
    library = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        return ctypes.CDLL(library)
    except OSError as exc:
        raise NoGpuError(
            f"no CUDA driver ({library} not loadable: {exc}); TensorRT engines are built and run on the "
            "target GPU: run this on the Jetson / GPU machine with the NVIDIA driver installed"
        ) from exc


def cuda_device() -> CudaDevice:
    """Query device 0 through the CUDA driver library (no pycuda or torch needed).

    Raises:
        NoGpuError: no driver library or no device.
    """
    cuda = cuda_driver()
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
