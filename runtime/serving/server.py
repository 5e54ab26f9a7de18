"""The server process: Triton Inference Server (through PyTriton) serving one Segmenter.

Runs in the server environment (``setup/triton-env.sh``), started by ``fornet serve``::

    .venv-triton/bin/python -m fornet.runtime.serving.server export/fornet.onnx --http-port 8000

HTTP and gRPC (KServe v2 protocol), health at ``/v2/health/ready``, Prometheus metrics at
``:<metrics-port>/metrics``, dynamic batching up to the model's batch, a bounded queue that
refuses requests beyond it (Triton's queue policy, action REJECT), and a graceful stop on SIGTERM
or SIGINT (in-flight requests finish, then the server and the model are closed).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any

import numpy as np

from fornet.errors import FornetError
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.contract import FRAMES, LABELS, MODEL_NAME, OVERLAY, served_max_batch
from fornet.runtime.serving.model import FrameSegmentation
from fornet.runtime.serving.options import ServerOptions, add_server_arguments, server_options_from_args
from fornet.runtime.serving.ports import require_free_ports

#: Seconds Triton waits for in-flight requests when stopping.
EXIT_TIMEOUT_S = 10


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the serve loop the way Ctrl-C does (PyTriton then stops Triton gracefully)."""
    raise KeyboardInterrupt


def serve(options: ServerOptions) -> None:
    """Serve ``options.model`` until SIGTERM or SIGINT."""
    options.validate()
    require_free_ports(options.host, options.ports())
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor, TimeoutAction
    from pytriton.triton import Triton, TritonConfig

    with Segmenter(options.model) as segmenter:
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
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
            print(f"serving {options.model.path} as '{MODEL_NAME}' on {segmenter.backend.label} "
                  f"({segmenter.io.describe()}); max batch {max_batch}, "
                  f"queue {options.max_queue}; HTTP {options.http_url}, gRPC {options.host}:{options.grpc_port}, "
                  f"metrics {options.metrics_url}", flush=True)
            triton.serve()
    print("server stopped", flush=True)


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
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
