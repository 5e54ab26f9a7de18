"""One real Triton server per test session, serving the small raw-input, labels-output lite export; and
``fornet serve`` run as a user runs it (a subprocess), for the tests that stop or kill it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.serving.client import SegmentationClient
from fornet.runtime.serving.errors import ServingError
from fornet.runtime.serving.launcher import ServerProcess, server_environment
from fornet.runtime.serving.options import ServerOptions
from fornet.runtime.serving.ports import free_port, require_free_ports
from tests.helpers.runtime_models import LiteExport

#: The session server also answers the overlay, blended with this alpha.
OVERLAY_ALPHA = 0.5


@dataclass(frozen=True)
class RunningServer:
    """A started server and what the tests compare it with."""

    options: ServerOptions
    model: Path
    log: Path


def server_options(model: Path, **changes: object) -> ServerOptions:
    """Options on free 127.0.0.1 ports, on the CPU."""
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    while len(set(ports.values())) < 3:
        ports["grpc_port"], ports["metrics_port"] = free_port(), free_port()
    return ServerOptions(model=ModelSpec(model, device="cpu", threads=1), **ports, **changes)  # type: ignore[arg-type]


def frames(count: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Random-ish but structured uint8 BGR frames (smooth gradients plus noise)."""
    rng = np.random.default_rng(seed)
    h, w = size
    grid = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] + np.linspace(0, 128, h)[:, None, None]
    return [np.clip(grid * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            for _ in range(count)]


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory, lite: LiteExport) -> Iterator[RunningServer]:
    """Start the server (bounded wait), yield it, always stop it and check it stopped gracefully."""
    try:
        server_environment()
    except Exception as exc:  # the set-up step is part of `make test`; say so when it was skipped
        pytest.fail(f"{exc}")
    model = lite.raw_labels
    log = tmp_path_factory.mktemp("triton-log") / "server.log"
    options = server_options(model, max_batch=8, overlay=True, alpha=OVERLAY_ALPHA)
    with log.open("w") as stream:
        server = ServerProcess(options, log=stream).start()
        try:
            server.wait_ready(timeout_s=120)
            yield RunningServer(options, model, log)
        finally:
            status = server.stop(timeout_s=30)
    assert status == 0, f"the server did not stop gracefully (status {status}); see {log}"


def start_fornet_serve(options: ServerOptions, log: Path, timeout_s: float = 120.0) -> subprocess.Popen[bytes]:
    """``fornet-serve`` with ``options`` in a subprocess (output to ``log``), returned once the model answers."""
    script = shutil.which("fornet-serve", path=str(Path(sys.executable).parent))
    assert script is not None
    with log.open("wb") as stream:
        process = subprocess.Popen([script, *options.argv()], stdout=stream, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    with SegmentationClient(options.http_url, timeout_s=5) as client:
        while not client.is_ready():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"fornet serve did not start (status {process.poll()}):\n{log.read_text()}")
            time.sleep(0.3)
    return process


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux /proc), e.g. the server process of ``fornet serve``."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def seconds_until_ports_free(options: ServerOptions, timeout_s: float) -> float | None:
    """How long until no one listens on the server's three ports any more (None: not within ``timeout_s``)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        try:
            require_free_ports(options.host, options.ports())
            return time.monotonic() - began
        except ServingError:
            time.sleep(0.2)
    return None


def post_zero_size_frame(url: str, shape: tuple[int, ...] = (1, 0, 0, 3)) -> tuple[int, str]:
    """A plain-HTTP request (no fornet client) with an empty batch of this shape (one 0 x 0 frame by default)
    to model ``fornet``: the status and the answer."""
    body = json.dumps({"inputs": [{"name": "frames", "shape": list(shape), "datatype": "UINT8", "data": []}]})
    request = urllib.request.Request(f"{url}/v2/models/fornet/infer", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
