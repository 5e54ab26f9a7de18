"""The server's options: one dataclass and one set of flags, shared by ``fornet serve`` and the server process.

``fornet serve`` (main environment) parses the flags, checks them, and hands them on unchanged
(:meth:`ServerOptions.argv`) to the server process in the server environment, which parses them
with the same :func:`add_server_arguments`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from fornet.options import (
    OptionGroup,
    add_options,
    alpha_arg,
    option,
    option_groups,
    options_from_args,
    positive_int_arg,
    to_argv,
)
from fornet.runtime.model_spec import MODEL, ModelSpec
from fornet.runtime.serving.contract import DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, DEFAULT_QUEUE_DELAY_US
from fornet.runtime.serving.errors import ServingError

NETWORK = OptionGroup("network")
OUTPUTS = OptionGroup("answers")
BATCHING = OptionGroup("batching and queue")


@dataclass(frozen=True)
class ServerOptions:
    """How to serve one model (each field declares its flag; the model is a :class:`ModelSpec`).

    Attributes:
        model: the model and how to open it (anything the Segmenter opens).
        host: address every endpoint binds to (HTTP, gRPC, metrics).
        http_port, grpc_port, metrics_port: the three ports.
        max_batch: largest batch the dynamic batcher forms for a dynamic-batch model (a static
            batch is used as it is).
        max_queue: requests waiting beyond this are refused at once with an error.
        queue_delay_us: how long the batcher waits for more requests to fill a batch.
        overlay: also answer the colour overlay, blended with ``alpha``.
        alpha: opacity of the overlay's class colours.
    """

    model: ModelSpec
    host: str = option("127.0.0.1", flag="--host", group=NETWORK,
                       help="address of the HTTP, gRPC and metrics endpoints (127.0.0.1: this machine only; "
                            "0.0.0.0 for every interface)")
    http_port: int = option(8000, flag="--http-port", parse=int, metavar="N", group=NETWORK, help="HTTP port")
    grpc_port: int = option(8001, flag="--grpc-port", parse=int, metavar="N", group=NETWORK, help="gRPC port")
    metrics_port: int = option(8002, flag="--metrics-port", parse=int, metavar="N", group=NETWORK,
                               help="Prometheus metrics port, /metrics")
    max_batch: int = option(DEFAULT_MAX_BATCH, flag="--max-batch", parse=positive_int_arg, metavar="N", group=BATCHING,
                            help="largest batch formed for a dynamic-batch model; a static batch is used as it is")
    max_queue: int = option(DEFAULT_MAX_QUEUE, flag="--max-queue", parse=positive_int_arg, metavar="N", group=BATCHING,
                            help="requests queued beyond N are refused at once")
    queue_delay_us: int = option(DEFAULT_QUEUE_DELAY_US, flag="--queue-delay-us", parse=int, metavar="US",
                                 group=BATCHING, help="wait up to US microseconds to fill a batch")
    overlay: bool = option(False, flag="--overlay", group=OUTPUTS,
                           help="also answer the frame blended with the class colours (output 'overlay')")
    alpha: float = option(0.5, flag="--alpha", parse=alpha_arg, metavar="ALPHA", group=OUTPUTS,
                          help="opacity of the class colours in the overlay, 0..1")

    @property
    def overlay_alpha(self) -> float | None:
        """The overlay's alpha when the overlay is answered, else None."""
        return self.alpha if self.overlay else None

    def validate(self) -> None:
        """Raise :class:`ServingError` for values that cannot work."""
        ports = self.ports()
        if len(set(ports.values())) != len(ports):
            raise ServingError(f"the ports must differ, got {ports}")
        if any(not 0 < port < 65536 for port in ports.values()):
            raise ServingError(f"ports must be in 1..65535, got {ports}")
        if self.max_batch < 1 or self.max_queue < 1 or self.queue_delay_us < 0:
            raise ServingError("--max-batch and --max-queue must be at least 1 and --queue-delay-us at least 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ServingError(f"--alpha must be in [0, 1], got {self.alpha}")

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
        return [*to_argv(self.model), *to_argv(self)]


def add_server_arguments(parser: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    """Declare the model and server flags on ``parser`` (``model_required=False``: the caller takes a positional)."""
    groups = option_groups(parser, MODEL, OUTPUTS, NETWORK, BATCHING)
    add_options(parser, ModelSpec, groups, required=("path",) if model_required else ())
    add_options(parser, ServerOptions, groups)


def server_options_from_args(args: argparse.Namespace, **model_fields: object) -> ServerOptions:
    """The options that parsed :func:`add_server_arguments` arguments describe (validated)."""
    spec = options_from_args(ModelSpec, args, **model_fields)
    options = options_from_args(ServerOptions, args, model=spec)
    options.validate()
    return options
