"""RTSP on 127.0.0.1: a GStreamer RTSP server in its own process is killed, restarted and frozen while
``fornet run`` reads it; the run reconnects, reports each gap, writes a playable video and exits cleanly.

The server runs under the system Python (/usr/bin/python3 with python3-gi and the RTSP server's
introspection data; ``make system-deps`` installs them).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fornet.runtime.video.gst import gst_available
from fornet.runtime.video.sinks import FrameLine
from fornet.runtime.video.stats import PipelineReport
from tests.runtime_models import LiteExport
from tests.video_helpers import decode_all

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("video_rtsp_server.py")


def _server_available() -> bool:
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not _server_available(), reason="needs the GStreamer RTSP server for "
                                "/usr/bin/python3: run `make system-deps` (or setup/system-packages.sh)")


class Server:
    """The test server process; ``start`` on a fixed port after the first (free) one."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        for _ in range(20):  # the old socket may linger for a moment after a kill
            self.process = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port)],
                                            stdout=subprocess.PIPE, text=True)
            assert self.process.stdout is not None
            line = self.process.stdout.readline().split()
            if line and line[0] == "PORT":
                self.port = int(line[1])
                return
            self.process.wait(5)
            time.sleep(0.25)
        raise RuntimeError(f"the RTSP test server could not bind port {self.port}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        if signum == signal.SIGKILL:
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    running.start()
    try:
        yield running
    finally:
        running.stop()


BACKENDS = ["pyav", pytest.param("gstreamer", marks=pytest.mark.skipif(
    not gst_available(), reason="GStreamer's Python bindings are not reachable from this Python"))]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_rtsp_drop_drill(server: Server, backend: str, lite: LiteExport, tmp_path_factory: pytest.TempPathFactory,
                         tmp_path: Path) -> None:
    out, report_path = tmp_path / "live.mp4", tmp_path / "report.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "fornet.cli.run", f"rtsp://127.0.0.1:{server.port}/cam", str(out),
         "--model", str(lite.onnx), "--device", "cpu", "--input-backend", backend,
         "--watchdog-s", "2", "--duration-s", "19", "--report", str(report_path), "--jsonl",
         str(tmp_path / "frames.jsonl"), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        server.signal(signal.SIGKILL)           # the server dies ...
        time.sleep(2)
        server.start()                          # ... and comes back on the same port
        time.sleep(5)
        server.signal(signal.SIGSTOP)           # frozen: no end of stream, no error, nothing
        time.sleep(4)
        server.signal(signal.SIGCONT)
        stdout, stderr = run.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    report = PipelineReport.load(report_path)
    source = report.sources[0]
    assert source.reconnects >= 2 and len(source.gaps) >= 2, stdout + stderr
    assert any("watchdog" in gap.reason for gap in source.gaps)
    assert all(gap.seconds > 0.5 for gap in source.gaps)
    assert stderr.count("gap") >= 2
    records = FrameLine.read_lines(tmp_path / "frames.jsonl")
    assert len(decode_all(out)) == report.frames == len(records) > 50


@pytest.mark.skipif(not gst_available(), reason="GStreamer's Python bindings are not reachable from this Python")
def test_rtsp_output_serves_the_overlay(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``fornet run clip rtsp://127.0.0.1:PORT/seg`` (its own process: GStreamer stays out of pytest's)."""
    import socket

    from fornet.runtime.video import SourceError, VideoSource
    from tests.video_helpers import FRAME_SIZE, pan_clip

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clip = pan_clip(tmp_path_factory, frames=400)
    run = subprocess.Popen([sys.executable, "-m", "fornet.cli.run", str(clip.path), f"rtsp://127.0.0.1:{port}/seg",
                            "--model", str(lite.onnx), "--device", "cpu", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shape = None
    try:
        deadline = time.monotonic() + 60
        while shape is None and time.monotonic() < deadline and run.poll() is None:
            try:
                with VideoSource(f"rtsp://127.0.0.1:{port}/seg", backend="pyav", watchdog_s=3) as client:
                    frame = client.get(5)
                    shape = None if frame is None else frame.image.shape
            except SourceError:  # not serving yet
                time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
    assert shape == (*FRAME_SIZE, 3), stderr
    assert "Traceback" not in stderr
