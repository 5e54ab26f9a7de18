"""``fornet serve``: serve a model through NVIDIA Triton Inference Server (HTTP, gRPC, metrics).

The server runs in its own environment (``make triton-env``); this command checks the options,
the model file and the ports, starts the server there and passes SIGTERM / Ctrl-C on to it.
"""

from __future__ import annotations

import argparse

from fornet.cli.command import Command
from fornet.runtime.serving.launcher import ENV_VAR, serve_foreground
from fornet.runtime.serving.options import add_server_arguments, server_options_from_args

EPILOG = f"""examples:
  fornet serve export/fornet.onnx --device cpu                  # HTTP :8000, gRPC :8001, metrics :8002
  fornet serve export/fornet_fp16.plan --max-batch 8 --overlay 0.5 --host 0.0.0.0
  fornet bench --engine export/fornet.onnx --triton http://127.0.0.1:8000 --concurrency 1,4,8

requests: input 'frames' uint8 [N, H, W, 3] BGR; outputs 'labels' uint8 [N, H, W] (and 'overlay').
health: GET /v2/health/ready; metrics: GET :<metrics-port>/metrics. The server environment is
.venv-triton (make triton-env), or the folder ${ENV_VAR} names.
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)
    parser.add_argument("--server-env", metavar="DIR",
                        help=f"the server environment (default: ${ENV_VAR}, else .venv-triton)")


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    return serve_foreground(server_options_from_args(args), args.server_env)


COMMAND = Command(
    name="serve",
    alias="fornet-serve",
    summary="serve a model through Triton Inference Server (HTTP/gRPC, dynamic batching, metrics)",
    description=__doc__ or "",
    add_arguments=_add_arguments,
    run=_run,
    epilog=EPILOG,
)

main = COMMAND.alias_main

if __name__ == "__main__":
    raise SystemExit(main())
