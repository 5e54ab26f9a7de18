"""The server's options: one dataclass and one set of flags, shared by ``fornet serve`` and the server process.

``fornet serve`` (main environment) parses the flags, checks them, and hands them on unchanged
(:meth:`ServerOptions.argv`) to the server process in the server environment, which parses them
with the same :func:`add_server_arguments`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fornet.options import (
    OptionGroup,
    add_options,
    device_arg,
    hw_arg,
    option,
    option_groups,
    options_from_args,
    to_argv,
)
from fornet.runtime.serving.contract import DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, DEFAULT_QUEUE_DELAY_US
from fornet.runtime.serving.errors import ServingError

NETWORK = OptionGroup("network")
MODEL = OptionGroup("model")
BATCHING = OptionGroup("batching and queue")


@dataclass(frozen=True)
class ServerOptions:
    """How to serve one model (each field declares its flag; ``model`` is the positional argument).

    Attributes:
        model: a TensorRT plan, an ONNX file or a checkpoint (anything the Segmenter opens).
        host: address every endpoint binds to (HTTP, gRPC, metrics).
        http_port, grpc_port, metrics_port: the three ports.
        device: GPU index, or ``"cpu"``.
        threads: CPU threads of ONNX Runtime / PyTorch.
        max_batch: largest batch the dynamic batcher forms for a dynamic-batch model (a static
            batch is used as it is).
        max_queue: requests waiting beyond this are refused at once with an error.
        queue_delay_us: how long the batcher waits for more requests to fill a batch.
        overlay_alpha: also answer the colour overlay, blended with this alpha.
        input_size: ``(H, W)`` for a checkpoint.
        sidecar: the model's ``<model>.onnx.json`` when it is not beside the model.
    """

    model: Path
    host: str = option("127.0.0.1", flag="--host", group=NETWORK,
                       help="address of the HTTP, gRPC and metrics endpoints (127.0.0.1: this machine only; "
                            "0.0.0.0 for every interface)")
    http_port: int = option(8000, flag="--http-port", parse=int, metavar="N", group=NETWORK, help="HTTP port")
    grpc_port: int = option(8001, flag="--grpc-port", parse=int, metavar="N", group=NETWORK, help="gRPC port")
    metrics_port: int = option(8002, flag="--metrics-port", parse=int, metavar="N", group=NETWORK,
                               help="Prometheus metrics port, /metrics")
    device: int | str = option(0, flag="--device", parse=device_arg, metavar="N|cpu", group=MODEL,
                               help="GPU index or cpu")
    threads: int | None = option(None, flag="--threads", parse=int, metavar="N", group=MODEL, default_text="",
                                 help="CPU threads of ONNX Runtime / PyTorch")
    max_batch: int = option(DEFAULT_MAX_BATCH, flag="--max-batch", parse=int, metavar="N", group=BATCHING,
                            help="largest batch formed for a dynamic-batch model; a static batch is used as it is")
    max_queue: int = option(DEFAULT_MAX_QUEUE, flag="--max-queue", parse=int, metavar="N", group=BATCHING,
                            help="requests queued beyond N are refused at once")
    queue_delay_us: int = option(DEFAULT_QUEUE_DELAY_US, flag="--queue-delay-us", parse=int, metavar="US",
                                 group=BATCHING, help="wait up to US microseconds to fill a batch")
    overlay_alpha: float | None = option(None, flag="--overlay", parse=float, metavar="ALPHA", group=MODEL,
                                         default_text="", help="also answer the colour overlay (output 'overlay'), "
                                                               "blended with ALPHA")
    input_size: tuple[int, int] | None = option(None, flag="--input-size", parse=hw_arg, metavar="HxW",
                                                group=MODEL, default_text="",
                                                help="network input size of a checkpoint")
    sidecar: Path | None = option(None, flag="--sidecar", parse=Path, metavar="JSON", group=MODEL, default_text="",
                                  help="the model's <model>.onnx.json, if not beside it")

    def validate(self) -> None:
        """Raise :class:`ServingError` for values that cannot work."""
        ports = self.ports()
        if len(set(ports.values())) != len(ports):
            raise ServingError(f"the ports must differ, got {ports}")
        if any(not 0 < port < 65536 for port in ports.values()):
            raise ServingError(f"ports must be in 1..65535, got {ports}")
        if self.max_batch < 1 or self.max_queue < 1 or self.queue_delay_us < 0:
            raise ServingError("--max-batch and --max-queue must be at least 1 and --queue-delay-us at least 0")
        if self.overlay_alpha is not None and not 0.0 <= self.overlay_alpha <= 1.0:
            raise ServingError(f"--overlay alpha must be in [0, 1], got {self.overlay_alpha}")

    def ports(self) -> dict[str, int]:
        """The ports by the flag that sets each."""
        return {"--http-port": self.http_port, "--grpc-port": self.grpc_port, "--metrics-port": self.metrics_port}

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP endpoint (health: ``/v2/health/ready``)."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """Prometheus metrics endpoint."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        """The arguments that :func:`add_server_arguments` parses back into these options."""
        return [str(self.model), *to_argv(self)]


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the server arguments on ``parser``: the model, then every declared option."""
    parser.add_argument("model", type=Path, help="TensorRT plan, ONNX file or checkpoint (.pth, with --input-size)")
    add_options(parser, ServerOptions, option_groups(parser, NETWORK, MODEL, BATCHING))


def server_options_from_args(args: argparse.Namespace) -> ServerOptions:
    """The options that parsed :func:`add_server_arguments` arguments describe (validated)."""
    options = options_from_args(ServerOptions, args, model=args.model)
    options.validate()
    return options
