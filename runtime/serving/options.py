"""The server's options: one dataclass and one set of flags, shared by ``fornet serve`` and the server process.

``fornet serve`` (main environment) parses the flags, checks them, and hands them on unchanged
(:meth:`ServerOptions.argv`) to the server process in the server environment, which parses them
with the same :func:`add_server_arguments`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fornet.cli_utils import hw_arg
from fornet.runtime.serving.contract import DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, DEFAULT_QUEUE_DELAY_US
from fornet.runtime.serving.errors import ServingError


@dataclass(frozen=True)
class ServerOptions:
    """How to serve one model.

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
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    device: int | str = 0
    threads: int | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    max_queue: int = DEFAULT_MAX_QUEUE
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    overlay_alpha: float | None = None
    input_size: tuple[int, int] | None = None
    sidecar: Path | None = None

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
        """The flags that :func:`add_server_arguments` parses back into these options."""
        args = [str(self.model), "--host", self.host, "--http-port", str(self.http_port),
                "--grpc-port", str(self.grpc_port), "--metrics-port", str(self.metrics_port),
                "--device", str(self.device), "--max-batch", str(self.max_batch),
                "--max-queue", str(self.max_queue), "--queue-delay-us", str(self.queue_delay_us)]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        if self.overlay_alpha is not None:
            args += ["--overlay", str(self.overlay_alpha)]
        if self.input_size is not None:
            args += ["--input-size", f"{self.input_size[0]}x{self.input_size[1]}"]
        if self.sidecar is not None:
            args += ["--sidecar", str(self.sidecar)]
        return args


def _device(text: str) -> int | str:
    if text == "cpu":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a GPU index (0, 1, ...) or 'cpu', got {text!r}")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the server flags on ``parser``."""
    parser.add_argument("model", type=Path, help="TensorRT plan, ONNX file or checkpoint (.pth, with --input-size)")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1",
                     help="address of the HTTP, gRPC and metrics endpoints (default: 127.0.0.1, this machine only; "
                          "0.0.0.0 for every interface)")
    net.add_argument("--http-port", type=int, default=8000, metavar="N", help="HTTP port (default: 8000)")
    net.add_argument("--grpc-port", type=int, default=8001, metavar="N", help="gRPC port (default: 8001)")
    net.add_argument("--metrics-port", type=int, default=8002, metavar="N",
                     help="Prometheus metrics port, /metrics (default: 8002)")
    model = parser.add_argument_group("model")
    model.add_argument("--device", type=_device, default=0, metavar="N|cpu", help="GPU index or cpu (default: 0)")
    model.add_argument("--threads", type=int, metavar="N", help="CPU threads of ONNX Runtime / PyTorch")
    model.add_argument("--input-size", type=hw_arg, metavar="HxW", help="network input size of a checkpoint")
    model.add_argument("--sidecar", type=Path, metavar="JSON", help="the model's <model>.onnx.json, if not beside it")
    model.add_argument("--overlay", type=float, metavar="ALPHA",
                       help="also answer the colour overlay (output 'overlay'), blended with ALPHA")
    batching = parser.add_argument_group("batching and queue")
    batching.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, metavar="N",
                          help="largest batch formed for a dynamic-batch model; a static batch is used as it is "
                               f"(default: {DEFAULT_MAX_BATCH})")
    batching.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
                          help=f"requests queued beyond N are refused at once (default: {DEFAULT_MAX_QUEUE})")
    batching.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US, metavar="US",
                          help=f"wait up to US microseconds to fill a batch (default: {DEFAULT_QUEUE_DELAY_US})")


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    """The options that parsed :func:`add_server_arguments` flags describe (validated)."""
    options = ServerOptions(
        model=args.model, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=args.metrics_port, device=args.device, threads=args.threads, max_batch=args.max_batch,
        max_queue=args.max_queue, queue_delay_us=args.queue_delay_us, overlay_alpha=args.overlay,
        input_size=args.input_size, sidecar=args.sidecar,
    )
    options.validate()
    return options
