"""The server process: Triton Inference Server (through PyTriton) serving one Segmenter.

Runs in the server environment (``setup/triton-env.sh``), started by ``fornet serve``::

    .venv-triton/bin/python -m fornet.runtime.serving.server export/fornet.onnx --http-port 8000

HTTP and gRPC (KServe v2 protocol), health at ``/v2/health/ready``, Prometheus metrics at
``:<metrics-port>/metrics``, dynamic batching up to the model's batch, a bounded queue that
refuses requests beyond it (Triton's queue policy, action REJECT), and a graceful stop on SIGTERM,
SIGINT or SIGHUP: the model is unloaded first, so new requests are refused at once while those in
flight finish (up to :data:`DRAIN_TIMEOUT_S`), then Triton and the model are closed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from fornet.errors import FornetError
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving import proxy_files
from fornet.runtime.serving.contract import FRAMES, LABELS, MODEL_NAME, OVERLAY, STOP_SIGNALS, served_max_batch
from fornet.runtime.serving.errors import ServingError
from fornet.runtime.serving.model import FrameSegmentation
from fornet.runtime.serving.options import ServerOptions, add_server_arguments, server_options_from_args
from fornet.runtime.serving.ports import require_free_ports
from fornet.runtime.serving.triton_log import gpu_probe_errors_hidden

#: Seconds a stop waits for the requests in flight to finish (new requests are refused meanwhile).
DRAIN_TIMEOUT_S = 10.0
#: Seconds Triton then waits for idle client connections to close before it exits (nothing is in flight).
EXIT_TIMEOUT_S = 2


def _ready(http_url: str) -> bool:
    """Whether Triton answers ready: every model it has is ready (false while one is unloading)."""
    try:
        with urllib.request.urlopen(f"{http_url}/v2/health/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False


def drain(http_url: str, headers: dict[str, str], model: str = MODEL_NAME, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
    """Unload ``model``: Triton refuses new requests for it at once ("unknown model"), finishes those in
    flight, then unloads it. Wait for that (the server is not ready while a model unloads); False when it
    took longer than ``timeout_s``. ``headers``: those Triton's model-repository API asks for (PyTriton
    restricts that API to its access token)."""
    unload = urllib.request.Request(f"{http_url}/v2/repository/models/{model}/unload", data=b"{}", method="POST",
                                    headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(unload, timeout=timeout_s):
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _ready(http_url):
            return True
        time.sleep(0.1)
    return False


def serve(options: ServerOptions) -> None:
    """Serve ``options.model`` until SIGTERM, SIGINT or SIGHUP, then drain and stop (see the module docstring)."""
    options.validate()
    require_free_ports(options.host, options.ports())
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: stop.set())
    from pytriton.client.auth import create_auth_headers
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor, TimeoutAction
    from pytriton.triton import Triton, TritonConfig

    proxy_files.install()
    with Segmenter(options.model) as segmenter, gpu_probe_errors_hidden(segmenter.backend.runs_on_cpu):
        computation = FrameSegmentation(segmenter, options.overlay_alpha)

        @batch
        def infer(**inputs: np.ndarray) -> dict[str, Any]:
            return computation(inputs[FRAMES])

        outputs = [Tensor(name=LABELS, dtype=np.uint8, shape=(-1, -1))]
        if options.overlay_alpha is not None:
            outputs.append(Tensor(name=OVERLAY, dtype=np.uint8, shape=(-1, -1, 3)))
        max_batch = served_max_batch(segmenter.io.batch, options.max_batch)
        queue = QueuePolicy(max_queue_size=options.max_queue, timeout_action=TimeoutAction.REJECT)
        config = TritonConfig(http_address=options.host, http_port=options.http_port, grpc_address=options.host,
                              grpc_port=options.grpc_port, metrics_address=options.host,
                              metrics_port=options.metrics_port, exit_timeout_secs=EXIT_TIMEOUT_S)
        with Triton(config=config) as triton:
            triton.bind(
                model_name=MODEL_NAME, infer_func=infer,
                inputs=[Tensor(name=FRAMES, dtype=np.uint8, shape=(-1, -1, 3))], outputs=outputs,
                config=ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(
                    max_queue_delay_microseconds=options.queue_delay_us, default_queue_policy=queue)),
                strict=True,
            )
            print(f"serving {options.model.path} as '{MODEL_NAME}' on {segmenter.backend.label} "
                  f"({segmenter.io.describe()}); max batch {max_batch}, "
                  f"queue {options.max_queue}; HTTP {options.http_url}, gRPC {options.host}:{options.grpc_port}, "
                  f"metrics {options.metrics_url}", flush=True)
            while not stop.wait(0.5) and triton.is_alive():
                pass
            if not stop.is_set():
                raise ServingError("Triton Inference Server ended on its own, not asked to stop; its output above "
                                   "says why")
            _stop_serving(options, create_auth_headers(triton.get_access_token(), "http"))
    print("server stopped", flush=True)


def _stop_serving(options: ServerOptions, headers: dict[str, str]) -> None:
    """Refuse new requests, let those in flight finish, and say how it went."""
    local = "127.0.0.1" if options.host == "0.0.0.0" else options.host
    print("stopping: new requests are refused, waiting for those in flight", flush=True)
    try:
        drained = drain(f"http://{local}:{options.http_port}", headers)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"stopping: Triton did not answer the unload ({exc}); stopping it anyway", flush=True)
        return
    if not drained:
        print(f"stopping: requests still in flight after {DRAIN_TIMEOUT_S:.0f} s; stopping anyway", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the server process (``python -m fornet.runtime.serving.server``)."""
    parser = argparse.ArgumentParser(prog="fornet-serve-process", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        serve(server_options_from_args(parser.parse_args(argv)))
    except FornetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
