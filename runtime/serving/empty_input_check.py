"""The model Triton's Python backend runs for ``fornet serve``: PyTriton's proxy model behind a check that
refuses empty tensors with a clean "bad request" answer.

PyTriton 0.7.0's proxy model fails on a tensor with a 0 in its shape (``[1, 0, 0, 3]``) while copying it to
shared memory, before the served function runs, and answers 500 with its Python traceback; every error
of its proxy is such a 500. This model is deployed as the proxy's ``model.py`` (PyTriton's own is renamed
:data:`PROXY_MODULE`, see :mod:`fornet.runtime.serving.proxy_files`): it answers each request that holds
an empty tensor with Triton's INVALID_ARG error (HTTP 400, gRPC INVALID_ARGUMENT) naming the input and its
shape, and passes the other requests of the batch to PyTriton's proxy unchanged.

It runs inside Triton's Python-backend stub, next to PyTriton's proxy files, so it imports nothing of
fornet and loads ``triton_python_backend_utils`` (which only the stub provides) when Triton starts it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The module name PyTriton's proxy model (its ``model.py``) is deployed under, next to this one.
PROXY_MODULE = "pytriton_proxy_model"


def empty_input_message(name: str, shape: list[int]) -> str | None:
    """Why an input of this shape is refused (None: it is not empty)."""
    if 0 not in shape:
        return None
    return (f"input '{name}' is empty (shape {shape}): send [N, H, W, 3] uint8 BGR frames with N, H and W at "
            "least 1")


class TritonPythonModel:
    """Triton Python-backend model: PyTriton's proxy model, with empty inputs refused before it."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Load the stub's utilities and PyTriton's proxy model (deployed next to this module)."""
        self._utils = importlib.import_module("triton_python_backend_utils")
        self._proxy = importlib.import_module(f"{__package__}.{PROXY_MODULE}").TritonPythonModel()
        self._proxy.initialize(args)

    def execute(self, requests: list[Any]) -> list[Any]:
        """One answer per request: an INVALID_ARG error for those with an empty input, the proxy's for the rest."""
        refusals = [self._refusal(request) for request in requests]
        accepted = [request for request, refusal in zip(requests, refusals, strict=True) if refusal is None]
        answers = iter(self._proxy.execute(accepted) if accepted else [])
        return [next(answers) if refusal is None else refusal for refusal in refusals]

    def finalize(self) -> None:
        """Close PyTriton's proxy model."""
        self._proxy.finalize()

    def _refusal(self, request: Any) -> Any | None:
        """The error answer to a request with an empty input, None for a request to pass on."""
        for tensor in request.inputs():
            message = empty_input_message(tensor.name(), list(tensor.shape()))
            if message is not None:
                error = self._utils.TritonError(message, self._utils.TritonError.INVALID_ARG)
                return self._utils.InferenceResponse(error=error)
        return None
