"""The base exception of the TensorRT build side (:mod:`fornet.export.tensorrt`)."""

from fornet.export.errors import ExportError


class TensorRTBuildError(ExportError):
    """An engine, plugin or calibration cache that cannot be built or read as asked."""
