"""Stopping ``fornet serve`` as users and service managers do: SIGTERM under load, SIGHUP, SIGKILL of the launcher,
and a restart on the same ports right after (real servers on 127.0.0.1, one per test)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.client import SegmentationClient
from fornet.runtime.serving.errors import RequestRejected, ServingError
from fornet.runtime.serving.launcher import ServerProcess
from tests.helpers.runtime_models import INPUT_SIZE, LiteExport
from tests.helpers.triton_server import (
    child_pids,
    frames,
    seconds_until_ports_free,
    server_options,
    start_fornet_serve,
)

pytestmark = pytest.mark.fault


@dataclass(frozen=True)
class Outcome:
    """One request of a client: when it was sent and answered (monotonic seconds) and how it ended."""

    sent: float
    done: float
    kind: str  # "answered", "wrong", "refused" (an error answer) or "failed" (no answer)
    message: str = ""


def _client(url: str, frame: np.ndarray, expected: np.ndarray, outcomes: list[Outcome]) -> None:
    """Send the frame again and again until the server refuses it or cannot be reached."""
    with SegmentationClient(url, timeout_s=30) as client:
        while True:
            sent = time.monotonic()
            try:
                labels = client.segment(frame)
            except RequestRejected as exc:
                outcomes.append(Outcome(sent, time.monotonic(), "refused", str(exc)))
                return
            except ServingError as exc:
                outcomes.append(Outcome(sent, time.monotonic(), "failed", str(exc)))
                return
            kind = "answered" if np.array_equal(labels, expected) else "wrong"
            outcomes.append(Outcome(sent, time.monotonic(), kind))


def test_sigterm_under_load_refuses_new_requests_drains_and_the_ports_take_a_restart(lite: LiteExport,
                                                                                      tmp_path: Path) -> None:
    """Clients busy at SIGTERM all get their answers; new requests are refused at once (not served for the 10 s
    exit timeout and then cut); the server exits 0 without Triton crashing; the same ports serve again at once."""
    options = server_options(lite.raw_labels)
    inputs = frames(8, INPUT_SIZE, seed=21)
    with Segmenter(lite.raw_labels, device="cpu", threads=1) as local:
        expected = [local(frame) for frame in inputs]
    log = tmp_path / "serve.log"
    process = start_fornet_serve(options, log)
    outcomes: list[Outcome] = []
    clients = [threading.Thread(target=_client, args=(options.http_url, frame, labels, outcomes), daemon=True)
               for frame, labels in zip(inputs, expected, strict=True)]
    try:
        for client in clients:
            client.start()
        time.sleep(1.5)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(60)
        exited_after = time.monotonic() - stopped_at
        for client in clients:
            client.join(30)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert status == 0, text
    assert "Signal (11)" not in text and "exited with failure" not in text, text
    assert exited_after < 15, f"stopping took {exited_after:.1f} s\n{text}"
    before = [o for o in outcomes if o.sent < stopped_at]  # in flight at SIGTERM: an answer or a clean refusal
    assert before and all(o.kind in ("answered", "refused") for o in before), [o for o in before if o.kind == "failed"]
    late = [o for o in outcomes if o.sent > stopped_at + 3.0]
    assert not any(o.kind in ("answered", "wrong") for o in late), "requests were still served 3 s after SIGTERM"
    assert not any(o.kind == "wrong" for o in outcomes)
    refused = [o for o in outcomes if o.kind == "refused"]
    assert refused and all("Traceback" not in o.message for o in refused), refused[:1]

    # A restart right away on the same ports: the connections Triton just closed (TIME_WAIT) do not block it.
    with (tmp_path / "restart.log").open("w") as restart_log, ServerProcess(options, log=restart_log) as server:
        server.wait_ready(timeout_s=120)
        with SegmentationClient(options.http_url) as client:
            assert np.array_equal(client.segment(inputs[0]), expected[0])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_the_server_never_outlives_fornet_serve(lite: LiteExport, tmp_path: Path, sig: signal.Signals) -> None:
    """``kill -9`` or ``kill -HUP`` of ``fornet serve``: Triton goes with it, its three ports free within 10 s."""
    options = server_options(lite.raw_labels)
    process = start_fornet_serve(options, tmp_path / "serve.log")
    servers = child_pids(process.pid)
    try:
        process.send_signal(sig)
        process.wait(30)
        freed_after = seconds_until_ports_free(options, timeout_s=10)
        assert freed_after is not None, (f"ports still in use 10 s after {sig.name} of fornet serve:\n"
                                         f"{(tmp_path / 'serve.log').read_text()}")
    finally:
        for pid in servers:  # the server's own process group: what a leak would leave behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_a_triton_that_dies_on_its_own_is_an_error_not_a_clean_stop(lite: LiteExport, tmp_path: Path) -> None:
    """tritonserver killed under ``fornet serve`` (a crash, the OOM killer): the command says so and exits 2."""
    options = server_options(lite.raw_labels)
    log = tmp_path / "serve.log"
    process = start_fornet_serve(options, log)
    try:
        (server,) = child_pids(process.pid)
        tritonserver = [pid for pid in child_pids(server) if "tritonserver" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(tritonserver) == 1
        os.kill(tritonserver[0], signal.SIGKILL)
        assert process.wait(60) == 2, log.read_text()
        assert "error: Triton Inference Server ended on its own" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
