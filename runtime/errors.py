"""The base exceptions of :mod:`fornet.runtime` (backends, pre/post, Segmenter, benchmarks)."""

from fornet.errors import FornetError


class FornetRuntimeError(FornetError):
    """A model that cannot be loaded or run here, or input it cannot take; the message names the fix."""


class TensorRTError(FornetRuntimeError):
    """TensorRT, CUDA, the plugin library or a plan is missing or unusable on this machine."""


class EngineLoadError(TensorRTError):
    """The plan cannot be read or deserialised here."""
