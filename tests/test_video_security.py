"""Video inputs and outputs under hostile or wrong addresses: no pipeline injection, no password in any output,
an RTSP output that listens on 127.0.0.1 and asks for a login, and a wrong stream that fails fast.

Every run is ``fornet run`` in its own process (GStreamer stays out of pytest's); the RTSP test
server runs under /usr/bin/python3 (``tests/video_rtsp_server.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fornet.cli.run import main as run_main
from fornet.runtime.video import SourceError
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import (
    FRAME_SIZE,
    NEEDS_GST,
    STREAM_BACKENDS,
    RtspTestServer,
    accepts,
    fornet_run,
    free_port,
    listening,
    pan_clip,
    served_frame,
)

pytestmark = pytest.mark.fault
PASSWORD = "S3cretPw"


def _finish(run: subprocess.Popen[str], timeout_s: float) -> tuple[str, str]:
    """stdout and stderr of ``run`` once it ends (killed after ``timeout_s``: a run that hangs fails the test)."""
    try:
        return run.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        run.kill()
        stderr = run.communicate()[1]
        pytest.fail(f"fornet run still running after {timeout_s} s:\n{stderr[-3000:]}")


# -- B: pipeline text in an address is a value, never pipeline elements ------------------------------------------


@NEEDS_GST
def test_rtsp_address_cannot_add_pipeline_elements(lite: LiteExport, tmp_path: Path) -> None:
    victim = tmp_path / "victim.bin"
    port = free_port()
    injected = (f'rtsp://127.0.0.1:{port}/x" ! fakesink videotestsrc num-buffers=3 ! filesink location={victim} '
                f'rtspsrc location="rtsp://127.0.0.1:{port}/y')
    run = fornet_run(injected, "--model", str(lite.onnx), "--device", "cpu", "--input-backend", "gstreamer",
                     "--quiet")
    _, stderr = _finish(run, 60)
    assert not victim.exists(), "the address added a filesink to the pipeline"
    assert run.returncode == 2 and "error:" in stderr


@NEEDS_GST
def test_file_name_with_pipeline_text_is_read_as_a_file(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory,
                                                        tmp_path: Path) -> None:
    clip = pan_clip(tmp_path_factory)
    named = tmp_path / 'clip" ! filesink location=victim.bin uridecodebin uri="x.mp4'
    shutil.copyfile(clip.path, named)
    run = fornet_run(str(named), "--model", str(lite.onnx), "--device", "cpu", "--input-backend", "gstreamer",
                     "--json", str(tmp_path / "report.json"), "--quiet", cwd=tmp_path)
    _, stderr = _finish(run, 120)
    assert not (tmp_path / "victim.bin").exists()
    assert run.returncode == 0, stderr
    assert json.loads((tmp_path / "report.json").read_text())["frames"] == len(clip.truth)


# -- C: passwords are masked in errors, log lines, records and reports -------------------------------------------


def test_refused_stream_error_hides_the_password(lite: LiteExport, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{free_port()}/live"
    assert run_main([url, "--model", str(lite.onnx), "--device", "cpu", "--input-backend", "pyav", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert "rtsp://admin:***@127.0.0.1" in captured.err


@pytest.mark.rtsp_server
@pytest.mark.parametrize("backend", STREAM_BACKENDS)
def test_records_reports_and_log_lines_hide_the_password(rtsp_server: RtspTestServer, backend: str,
                                                         lite: LiteExport, tmp_path: Path) -> None:
    jsonl, report = tmp_path / "frames.jsonl", tmp_path / "report.json"
    run = fornet_run(f"rtsp://admin:{PASSWORD}@127.0.0.1:{rtsp_server.port}/cam", "--model", str(lite.onnx),
                     "--device", "cpu", "--input-backend", backend, "--watchdog-s", "1", "--jsonl", str(jsonl),
                     "--json", str(report), "--quiet")
    time.sleep(5)
    rtsp_server.signal(signal.SIGKILL)  # the stream is lost: the log lines name the source
    time.sleep(3)
    run.send_signal(signal.SIGTERM)
    stdout, stderr = _finish(run, 90)
    assert run.returncode == 128 + signal.SIGTERM, stderr
    assert "lost" in stderr
    written = {"stdout": stdout, "stderr": stderr, "jsonl": jsonl.read_text(), "report": report.read_text()}
    assert [name for name, text in written.items() if PASSWORD in text] == []
    assert json.loads(written["report"])["sources"][0]["name"].startswith("rtsp://admin:***@127.0.0.1:")
    assert json.loads(written["jsonl"].splitlines()[0])["source"].startswith("rtsp://admin:***@")


# -- D: the RTSP output listens on 127.0.0.1 by default and can ask for a login -----------------------------------


def _other_local_addresses() -> list[str]:
    """Addresses of this machine besides 127.0.0.1: 127.0.0.2 (loopback too) and the outward one, if any."""
    addresses = ["127.0.0.2"]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outward interface
        outward = probe.getsockname()[0]
        if not outward.startswith("127."):
            addresses.append(outward)
    return addresses


@contextlib.contextmanager
def _serving(lite: LiteExport, camera: RtspTestServer, output: str, *flags: str, env: dict[str, str] | None = None
             ) -> Iterator[subprocess.Popen[str]]:
    """``fornet run CAMERA OUTPUT`` serving RTSP until the block ends (then SIGTERM: it must exit cleanly).

    The input is the endless live test camera, so the output is served for as long as the test needs it
    (a file input could end before a slow client connects).
    """
    run = fornet_run(f"rtsp://127.0.0.1:{camera.port}/cam", output, "--model", str(lite.onnx), "--device", "cpu",
                     "--quiet", *flags, env={**os.environ, **(env or {})})
    try:
        yield run
        run.send_signal(signal.SIGTERM)
        _, stderr = _finish(run, 60)
        assert "Traceback" not in stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()


@pytest.mark.rtsp_server
@NEEDS_GST
def test_rtsp_output_listens_on_loopback_and_refuses_clients_without_the_login(
        lite: LiteExport, rtsp_server: RtspTestServer) -> None:
    port = free_port()
    with _serving(lite, rtsp_server, f"rtsp://@:{port}/seg", "--rtsp-user", "viewer",
                  env={"FORNET_RTSP_PASSWORD": PASSWORD}) as run:
        assert listening(port, run), run.communicate()[1]
        assert [address for address in _other_local_addresses() if accepts(address, port)] == []
        with pytest.raises(SourceError, match="401"):
            served_frame(f"rtsp://127.0.0.1:{port}/seg")
        with pytest.raises(SourceError, match="401"):
            served_frame(f"rtsp://viewer:wrong@127.0.0.1:{port}/seg")
        assert served_frame(f"rtsp://viewer:{PASSWORD}@127.0.0.1:{port}/seg").shape == (*FRAME_SIZE, 3)


@pytest.mark.rtsp_server
@NEEDS_GST
def test_rtsp_host_flag_widens_the_output_to_every_interface(lite: LiteExport, rtsp_server: RtspTestServer) -> None:
    port = free_port()
    with _serving(lite, rtsp_server, f"rtsp://@:{port}/seg", "--rtsp-host", "0.0.0.0") as run:
        assert listening(port, run), run.communicate()[1]
        assert accepts("127.0.0.2", port)
        assert served_frame(f"rtsp://127.0.0.2:{port}/seg").shape == (*FRAME_SIZE, 3)


def test_rtsp_output_login_is_refused_on_the_command_line(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    clip = pan_clip(tmp_path_factory)
    assert run_main([str(clip.path), f"rtsp://viewer:{PASSWORD}@:8554/seg", "--model", str(lite.onnx)]) == 2
    err = capsys.readouterr().err
    assert PASSWORD not in err and "FORNET_RTSP_PASSWORD" in err


# -- E: a wrong or unreachable stream fails fast, with the fix -----------------------------------------------------


@pytest.mark.rtsp_server
@pytest.mark.parametrize("backend", STREAM_BACKENDS)
@pytest.mark.parametrize("case", ["refused", "wrong mount", "silent server"])
def test_wrong_or_unreachable_stream_fails_fast_with_the_fix(case: str, backend: str, rtsp_server: RtspTestServer,
                                                             silent_server: int, lite: LiteExport) -> None:
    port = {"refused": free_port(), "wrong mount": rtsp_server.port, "silent server": silent_server}[case]
    path = "nope" if case == "wrong mount" else "cam"
    started = time.monotonic()
    run = fornet_run(f"rtsp://127.0.0.1:{port}/{path}", "--model", str(lite.onnx), "--device", "cpu",
                     "--input-backend", backend, "--watchdog-s", "2", "--quiet")
    _, stderr = _finish(run, 60)
    seconds = time.monotonic() - started
    assert run.returncode == 2, stderr
    assert "error: " in stderr and f"127.0.0.1:{port}/{path}" in stderr
    assert "check" in stderr and "the server runs" in stderr, stderr
    assert seconds < 15, f"took {seconds:.1f} s: {stderr}"
