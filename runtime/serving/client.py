"""A small Triton client for the served FoR-Net: frames in, labels (and the overlay) out.

    from fornet.runtime.serving.client import SegmentationClient

    client = SegmentationClient("http://127.0.0.1:8000")      # or grpc://127.0.0.1:8001
    labels = client.segment(frame)                            # uint8 BGR HxWx3 -> uint8 HxW

Needs ``tritonclient[http,grpc]`` (the ``serve`` extra). A client serves one thread; make one per
thread for concurrent requests.
"""

from __future__ import annotations

from http.client import HTTPException
from typing import Any
from urllib.parse import urlparse

import numpy as np

from fornet.runtime.serving.contract import FRAMES, LABELS, MODEL_NAME, OVERLAY
from fornet.runtime.serving.errors import RequestRejected, ServingError

PROTOCOLS = ("http", "grpc")


def _modules(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError as exc:
        raise ServingError("the Triton client is not installed; pip install -e '.[serve]' (tritonclient)") from exc
    return module


class SegmentationClient:
    """Requests to the model that ``fornet serve`` serves.

    Args:
        url: ``http://host:port`` or ``grpc://host:port`` (a bare ``host:port`` is HTTP).
        model: model name in the server.
        timeout_s: network timeout of one request.
    """

    def __init__(self, url: str, model: str = MODEL_NAME, timeout_s: float = 60.0) -> None:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in PROTOCOLS or not parsed.netloc:
            raise ServingError(f"cannot use server URL {url!r}; write http://HOST:PORT or grpc://HOST:PORT")
        self.protocol = parsed.scheme
        self.model = model
        self._module = _modules(self.protocol)
        if self.protocol == "grpc":
            self._client = self._module.InferenceServerClient(parsed.netloc)
        else:
            self._client = self._module.InferenceServerClient(parsed.netloc, connection_timeout=timeout_s,
                                                              network_timeout=timeout_s)
        self._timeout_s = timeout_s

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return getattr(self._client, method)(*args, **kwargs)
        except InferenceServerException as exc:
            raise RequestRejected(f"the server refused the request: {exc.message()}") from exc
        except (ConnectionError, OSError, HTTPException) as exc:  # HTTPException: the connection closed mid-answer
            raise ServingError(f"cannot reach the server ({exc}); is `fornet serve` running at that address?") from exc

    def is_ready(self) -> bool:
        """Whether the server and the model are ready."""
        try:
            return bool(self._call("is_server_ready") and self._call("is_model_ready", self.model))
        except ServingError:
            return False

    def infer(self, batch: np.ndarray, outputs: tuple[str, ...] = (LABELS,)) -> dict[str, np.ndarray]:
        """Send a ``[N, H, W, 3]`` batch as one request; return the named outputs.

        An empty batch or frame (a 0 in the shape) is refused here with :class:`ServingError`, before
        anything is sent: the server answers an empty frame with a 400, but Triton never answers an
        empty batch of 0 x 0 frames (see docs/serving.md).
        """
        from tritonclient.utils import np_to_triton_dtype

        if batch.size == 0:
            raise ServingError(f"{FRAMES} is empty (shape {list(batch.shape)}): send [N, H, W, 3] uint8 BGR with "
                               "N, H and W at least 1")

        tensor = self._module.InferInput(FRAMES, list(batch.shape), np_to_triton_dtype(batch.dtype))
        tensor.set_data_from_numpy(batch)
        requested = [self._module.InferRequestedOutput(name) for name in outputs]
        result = self._call("infer", self.model, [tensor], outputs=requested)
        return {name: result.as_numpy(name) for name in outputs}

    def segment(self, frame: np.ndarray) -> np.ndarray:
        """Labels (uint8 ``H x W``) of one uint8 BGR frame."""
        return self.infer(np.ascontiguousarray(frame)[None])[LABELS][0]

    def segment_with_overlay(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and overlay of one frame (the server must run with ``--overlay``)."""
        answer = self.infer(np.ascontiguousarray(frame)[None], (LABELS, OVERLAY))
        return answer[LABELS][0], answer[OVERLAY][0]

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> SegmentationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
