"""Shared pieces of the video tests: a generated H.264 clip with ground truth, decoding, the loopback RTSP
test server (a process of its own) and ``fornet run`` in a subprocess.

The model is the session fixture ``lite`` (conftest.py): ``lite.onnx`` (batch 1) and
``lite.raw_labels`` (dynamic batch)."""

from __future__ import annotations

import contextlib
import functools
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime.video import SourceError, VideoSource
from fornet.runtime.video.gst import gst_available
from fornet.runtime.video.nvdec import INSTALL, nvdec_available

#: The Python with python3-gi and the RTSP server's introspection data (``make system-deps``).
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("video_rtsp_server.py")

#: Frame size of the generated clips (the test model's input is 64x128: the segmenter resizes).
FRAME_SIZE = (128, 256)


@dataclass(frozen=True)
class Clip:
    """A generated pan over a street scene: the H.264 file and the trainIds of every frame."""

    path: Path
    truth: list[np.ndarray]


_CLIPS: dict[int, Clip] = {}


def pan_clip(factory: pytest.TempPathFactory, frames: int = 40) -> Clip:
    """Encode the clip once per session and length."""
    if frames not in _CLIPS:
        from fornet.runtime.video.synthetic import write_pan_video

        path = factory.mktemp("clip") / "pan.mp4"
        _CLIPS[frames] = Clip(path, write_pan_video(path, FRAME_SIZE, frames, fps=25, seed=1))
    return _CLIPS[frames]


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as BGR (an independent reading of the file)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


@dataclass(frozen=True)
class H264Format:
    """What FFmpeg (libavformat/libavcodec through PyAV, as ffprobe reads it) says of an H.264 stream."""

    codec: str
    pix_fmt: str
    profile: str


def h264_format(source: str | Path, attempts: int = 3) -> H264Format:
    """Probe the first video stream of a file or an RTSP URL (the first frame decoded, so its SPS was seen).

    An RTSP client may see the stream end at once while the server prepares its first media (a loaded
    machine): like a player, it tries again, ``attempts`` times in all.
    """
    import av

    for _ in range(attempts - 1):
        with contextlib.suppress(av.error.FFmpegError, StopIteration):
            return _probe_h264(str(source))
        time.sleep(1)
    return _probe_h264(str(source))


def _probe_h264(source: str) -> H264Format:
    import av

    options = {"rtsp_transport": "tcp"} if source.startswith("rtsp://") else {}
    with av.open(source, options=options, timeout=10) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        return H264Format(stream.codec_context.name, frame.format.name, stream.codec_context.profile)


@functools.cache
def rtsp_server_available() -> bool:
    """Whether /usr/bin/python3 can run the GStreamer RTSP test server."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NEEDS_GST = pytest.mark.skipif(not gst_available(),
                               reason="GStreamer's Python bindings are not reachable from this Python")
NEEDS_NVDEC = [pytest.mark.gpu, pytest.mark.skipif(not nvdec_available(), reason=f"NVDEC is not usable: {INSTALL}")]
#: The input backends of the stream tests (NVDEC on a GPU machine with PyNvVideoCodec).
STREAM_BACKENDS = ["pyav", pytest.param("gstreamer", marks=NEEDS_GST), pytest.param("nvdec", marks=NEEDS_NVDEC)]


class RtspTestServer:
    """The test server's process (``tests/video_rtsp_server.py``); ``start`` again reuses the first (free) port."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        for _ in range(20):  # the old socket may linger for a moment after a kill
            self.process = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port)],
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


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fornet_run(*args: str, **popen: object) -> subprocess.Popen[str]:
    """``fornet run ARGS`` in its own process (GStreamer stays out of pytest's), stdout and stderr piped."""
    return subprocess.Popen([sys.executable, "-m", "fornet.cli.run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]


def listening(port: int, run: subprocess.Popen[str], timeout_s: float = 90) -> bool:
    """Whether a server accepts connections on 127.0.0.1:``port`` before ``run`` ends or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.poll() is None:
        if accepts("127.0.0.1", port):
            return True
        time.sleep(0.2)
    return False


def accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
        return True
    return False


def served_frame(url: str, attempts: int = 3) -> np.ndarray:
    """The first frame an RTSP client (PyAV) gets from ``url``; raises ``SourceError`` when refused.

    A client that connects while the server is still preparing its first media (a loaded machine) may see
    the stream end at once; like a player, it tries again, ``attempts`` times in all.
    """
    for attempt in range(attempts):
        try:
            with VideoSource(url, backend="pyav", watchdog_s=3) as client:
                frame = client.get(5)
            break
        except SourceError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    assert frame is not None, f"no frame from {url}"
    return frame.image
