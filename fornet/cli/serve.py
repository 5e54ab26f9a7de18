"""``fornet serve``: serve a model through NVIDIA Triton Inference Server (HTTP, gRPC, metrics).

The server runs in its own environment (``make triton-env``); this command checks the options,
the model file and the ports, starts the server there and passes SIGTERM / Ctrl-C on to it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fornet.cli.command import Command
from fornet.runtime.serving.errors import ServingError
from fornet.runtime.serving.launcher import ENV_VAR, serve_foreground
from fornet.runtime.serving.options import add_server_arguments, server_options_from_args

EPILOG = f"""examples:
  fornet serve export/fornet.onnx --device cpu                  # HTTP :8000, gRPC :8001, metrics :8002
  fornet serve --model export/fornet_fp16.plan --max-batch 8 --overlay --alpha 0.5 --host 0.0.0.0
  fornet bench --model export/fornet.onnx --triton-url http://127.0.0.1:8000 --concurrency 1,4,8

requests: input 'frames' uint8 [N, H, W, 3] BGR; outputs 'labels' uint8 [N, H, W] (and 'overlay').
health: GET /v2/health/ready; metrics: GET :<metrics-port>/metrics. The server environment is
.venv-triton (make triton-env), or the folder ${ENV_VAR} names.
stopping: SIGTERM, Ctrl-C or SIGHUP refuse new requests, finish those in flight (up to 10 s) and exit 0;
the server never outlives this command (even kill -9); exit 2 if Triton ends on its own.
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", nargs="?", type=Path, metavar="MODEL",
                        help="the model to serve (the same as --model)")
    add_server_arguments(parser, model_required=False)
    parser.add_argument("--server-env", metavar="DIR",
                        help=f"the server environment (default: ${ENV_VAR}, else .venv-triton)")


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    if (args.model_file is None) == (args.model is None):
        raise ServingError("name the model once: `fornet serve MODEL` or `fornet serve --model MODEL`")
    return serve_foreground(server_options_from_args(args, path=args.model_file or args.model), args.server_env)


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
