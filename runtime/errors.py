"""The base exceptions of :mod:`fornet.runtime` (backends, pre/post, Segmenter, benchmarks).

Each says what failed: :class:`CudaError` for CUDA itself (pycuda, the driver, a GPU, nvcc, a
CUDA call), :class:`TensorRTError` for TensorRT (its bindings, the plugin library, a plan). A CUDA
problem is not a TensorRT problem: the CUDA pre/post kernels and a PyTorch model on the GPU meet
the same missing driver without TensorRT being involved.
"""

from fornet.errors import FornetError


class FornetRuntimeError(FornetError):
    """A model that cannot be loaded or run here, or input it cannot take; the message names the fix."""


class CudaError(FornetRuntimeError):
    """CUDA on this machine (pycuda, the driver, a GPU, nvcc) is missing, or a CUDA call failed."""


class TensorRTError(FornetRuntimeError):
    """TensorRT, the plugin library or a plan is missing or unusable on this machine."""


class EngineLoadError(TensorRTError):
    """The plan cannot be read or deserialised here."""
