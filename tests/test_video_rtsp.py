"""RTSP on 127.0.0.1: a GStreamer RTSP server in its own process is killed, restarted and frozen while
``fornet run`` reads it; the run reconnects, reports each gap, writes a playable video and exits cleanly.

The server runs under the system Python (/usr/bin/python3 with python3-gi and the RTSP server's
introspection data; ``make system-deps`` installs them).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest

from fornet.runtime.video.sinks import FrameLine
from fornet.runtime.video.stats import PipelineReport
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import (
    FRAME_SIZE,
    NEEDS_GST,
    STREAM_BACKENDS,
    RtspTestServer,
    decode_all,
    fornet_run,
    free_port,
    h264_format,
    listening,
    served_frame,
)

pytestmark = pytest.mark.rtsp_server


@pytest.mark.slow
@pytest.mark.parametrize("backend", STREAM_BACKENDS)
def test_rtsp_drop_drill(rtsp_server: RtspTestServer, backend: str, lite: LiteExport, tmp_path: Path) -> None:
    out, report_path = tmp_path / "live.mp4", tmp_path / "report.json"
    run = fornet_run(f"rtsp://127.0.0.1:{rtsp_server.port}/cam", str(out), "--model", str(lite.onnx), "--device", "cpu",
                     "--input-backend", backend, "--watchdog-s", "2", "--duration-s", "19", "--json",
                     str(report_path), "--jsonl", str(tmp_path / "frames.jsonl"), "--quiet")
    try:
        time.sleep(4)
        rtsp_server.signal(signal.SIGKILL)           # the server dies ...
        time.sleep(2)
        rtsp_server.start()                          # ... and comes back on the same port
        time.sleep(5)
        rtsp_server.signal(signal.SIGSTOP)           # frozen: no end of stream, no error, nothing
        time.sleep(4)
        rtsp_server.signal(signal.SIGCONT)
        stdout, stderr = run.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    report = PipelineReport.load(report_path)
    source = report.sources[0]
    # One reconnection per gap whatever the reader (GStreamer counted every attempt: 4 for one real one).
    assert source.reconnects == len(source.gaps) >= 2, stdout + stderr
    assert any("watchdog" in gap.reason for gap in source.gaps)
    assert all(gap.seconds > 0.5 for gap in source.gaps)
    assert stderr.count("gap") >= 2
    records = FrameLine.read_lines(tmp_path / "frames.jsonl")
    assert len(decode_all(out)) == report.frames == len(records) > 50
    # Frames are stamped with their capture times: the video lasts as long as the capture, gaps included
    # (a frame counter at the frame rate made it shorter by about the gaps, here over 2 s).
    span = records[-1].capture_time - records[0].capture_time
    assert sum(gap.seconds for gap in source.gaps) > 2
    assert _duration_s(out) == pytest.approx(span, abs=0.5)


def _duration_s(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(frame.pts * stream.time_base) for frame in container.decode(stream)]
    return max(times) - min(times)


@pytest.mark.rtsp_server
@NEEDS_GST
def test_rtsp_output_serves_the_overlay(lite: LiteExport, rtsp_server: RtspTestServer, tmp_path: Path) -> None:
    """``fornet run CAMERA rtsp://127.0.0.1:PORT/seg`` (its own process: GStreamer stays out of pytest's) serves
    H.264 4:2:0 (``yuv420p``) that FFmpeg reads back.

    The input is the endless live test camera: a file could end before a slow client connects.
    """
    port = free_port()
    report_path = tmp_path / "report.json"
    run = fornet_run(f"rtsp://127.0.0.1:{rtsp_server.port}/cam", f"rtsp://127.0.0.1:{port}/seg", "--model",
                     str(lite.onnx), "--device", "cpu", "--encoder", "x264", "--json", str(report_path), "--quiet")
    try:
        assert listening(port, run), run.communicate()[1]
        shape = served_frame(f"rtsp://127.0.0.1:{port}/seg").shape
        served = h264_format(f"rtsp://127.0.0.1:{port}/seg")
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
    assert shape == (*FRAME_SIZE, 3), stderr
    assert "Traceback" not in stderr
    # 4:2:0 in a profile hardware decoders, openh264 and browsers play (it was High 4:4:4, yuv444p).
    assert (served.codec, served.pix_fmt, served.profile) == ("h264", "yuv420p", "Constrained Baseline")
    assert PipelineReport.load(report_path).encoders == {f"rtsp://127.0.0.1:{port}/seg": "x264"}


@pytest.mark.rtsp_server
@NEEDS_GST
def test_rtsp_output_refuses_an_encoder_it_lacks(lite: LiteExport, tmp_path: Path) -> None:
    """--encoder nvenc needs Jetson's nvv4l2h264enc: without it the run stops before any frame, naming the fix."""
    from fornet.runtime.video.gst import has_element

    if has_element("nvv4l2h264enc"):
        pytest.skip("this GStreamer has nvv4l2h264enc (a Jetson)")
    clip = tmp_path / "clip.mp4"
    from fornet.runtime.video.synthetic import write_pan_video

    write_pan_video(clip, FRAME_SIZE, 3, fps=25, seed=1)
    run = fornet_run(str(clip), f"rtsp://127.0.0.1:{free_port()}/seg", "--model", str(lite.onnx), "--device", "cpu",
                     "--encoder", "nvenc", "--quiet")
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 2 and "Traceback" not in stderr
    assert "error: --encoder nvenc: the RTSP output encodes with nvv4l2h264enc" in stderr
