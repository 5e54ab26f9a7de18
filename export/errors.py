"""Typed errors of the ONNX export; each message names the problem and the fix."""

from __future__ import annotations

from fornet.errors import FornetError


class ExportError(FornetError):
    """An export request that cannot be carried out as asked (size, options, gate limits)."""


class GraphCheckError(ExportError):
    """The exported graph failed a structural check (onnx.checker, onnxsim, shape arithmetic)."""


class VerificationError(ExportError):
    """ONNX Runtime's outputs disagree with PyTorch's beyond the allowed threshold."""
