"""Errors of the serving layer."""

from __future__ import annotations

from fornet.runtime.errors import FornetRuntimeError


class ServingError(FornetRuntimeError):
    """The server cannot start here, or a request to it failed; the message names the fix."""


class RequestRejected(ServingError):
    """The server answered a request with an error (full queue, bad input); it is still up."""
