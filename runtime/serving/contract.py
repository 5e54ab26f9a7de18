"""What the served model takes and returns: the names shared by the server, the client and the repository.

One request item is one camera frame: ``frames`` uint8 ``H x W x 3`` BGR (any size; Triton batches
requests of the same size together). The answer is ``labels`` uint8 ``H x W`` (train ids, at the
frame's size) and, when the server was started with an overlay alpha, ``overlay`` uint8 ``H x W x 3``.
"""

from __future__ import annotations

import signal

#: Name of the model in Triton (``/v2/models/fornet``).
MODEL_NAME = "fornet"
#: Input: uint8 BGR frames, ``[batch, H, W, 3]``.
FRAMES = "frames"
#: Output: uint8 class indices at the frame's size, ``[batch, H, W]``.
LABELS = "labels"
#: Optional output: the frame blended with the class colours, ``[batch, H, W, 3]``.
OVERLAY = "overlay"
#: Default largest batch the dynamic batcher forms for a model with a dynamic batch.
DEFAULT_MAX_BATCH = 8
#: Default bound of the request queue (requests beyond it are refused at once).
DEFAULT_MAX_QUEUE = 64
#: Default time the batcher waits for more requests to fill a batch.
DEFAULT_QUEUE_DELAY_US = 2000
#: Signals that stop a server gracefully: the server drains on them and ``fornet serve`` passes them on
#: (SIGHUP: the terminal closed).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def served_max_batch(model_batch: int | None, requested: int = DEFAULT_MAX_BATCH) -> int:
    """The batch the dynamic batcher may form: the model's static batch, else ``requested``."""
    return requested if model_batch is None else model_batch
