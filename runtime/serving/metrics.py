"""Triton's Prometheus metrics: the batches the dynamic batcher formed (no Triton client needed)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from fornet.runtime.serving.contract import MODEL_NAME
from fornet.runtime.serving.errors import ServingError

_SAMPLE = re.compile(r'^(?P<name>nv_inference_(?:count|exec_count)){(?P<labels>[^}]*)}\s+(?P<value>[0-9.eE+]+)$')


@dataclass(frozen=True)
class BatchingStats:
    """Request and model-execution counts of one model (Triton's ``nv_inference_count`` / ``_exec_count``)."""

    inference_count: int
    execution_count: int

    @property
    def average_batch(self) -> float:
        """Requests per model execution (1.0: no batching happened; 0.0: nothing ran)."""
        return self.inference_count / self.execution_count if self.execution_count else 0.0

    def since(self, before: BatchingStats) -> BatchingStats:
        """The counts accumulated after ``before``."""
        return BatchingStats(self.inference_count - before.inference_count,
                             self.execution_count - before.execution_count)


def parse_batching_stats(text: str, model: str = MODEL_NAME) -> BatchingStats:
    """The counts of ``model`` in a Prometheus text exposition (zero when the model has none yet)."""
    counts = {"nv_inference_count": 0, "nv_inference_exec_count": 0}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and f'model="{model}"' in match["labels"]:
            counts[match["name"]] += int(float(match["value"]))
    return BatchingStats(counts["nv_inference_count"], counts["nv_inference_exec_count"])


def read_batching_stats(metrics_url: str, model: str = MODEL_NAME, timeout_s: float = 10.0) -> BatchingStats:
    """Fetch ``metrics_url`` (``http://host:8002/metrics``) and parse the model's counts."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as answer:
            return parse_batching_stats(answer.read().decode("utf-8", "replace"), model)
    except (urllib.error.URLError, OSError) as exc:
        raise ServingError(f"cannot read Triton's metrics at {metrics_url} ({exc}); pass --metrics-url "
                           "http://HOST:PORT/metrics with the port the server was given as --metrics-port") from exc
