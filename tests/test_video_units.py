"""Unit tests of the video building blocks: URIs, buffer policies, watchdog and backoff, H.264 writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fornet.redact import mask_credentials
from fornet.runtime.video.buffer import FrameBuffer
from fornet.runtime.video.encode import CONTAINERS, H264Writer, partial_path
from fornet.runtime.video.errors import SinkError, SourceError
from fornet.runtime.video.rtsp_access import PASSWORD_ENV, USER_ENV, RtspAccess
from fornet.runtime.video.uri import parse_sink, parse_source
from fornet.runtime.video.watchdog import Backoff, Watchdog
from tests.helpers.video import h264_format


def test_source_kinds(tmp_path: Path) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x")
    for name in ("b.png", "c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert parse_source(str(video)).kind == "video"
    assert parse_source(f"file://{video}").location == str(video)
    folder = parse_source(str(tmp_path))
    assert folder.kind == "images" and [Path(f).name for f in folder.files] == ["b.png", "c.jpg"]
    assert parse_source(str(tmp_path / "*.jpg")).files == (str(tmp_path / "c.jpg"),)
    rtsp = parse_source("rtsp://user:secret@cam:8554/live")
    assert rtsp.live and rtsp.kind == "rtsp" and rtsp.display_name == "rtsp://user:***@cam:8554/live"
    assert parse_source("csi://1").location == "1"
    assert parse_source("https://host/x.m3u8").kind == "http"
    assert parse_source("gst://videotestsrc ! videoconvert ! appsink").kind == "gst"
    assert not parse_source(str(video)).live


@pytest.mark.parametrize(("uri", "fix"), [
    ("ftp://host/video.mp4", "unknown input scheme"),
    ("/no/such/video.mp4", "input file not found"),
    ("v4l2:///dev/video97", "v4l2-ctl --list-devices"),
    ("csi://left", "csi://N"),
    ("gst://videotestsrc ! fakesink", "must end in an appsink"),
    ("/no/such/*.png", "no image files match"),
])
def test_bad_sources_name_the_fix(uri: str, fix: str) -> None:
    with pytest.raises(SourceError, match=fix):
        parse_source(uri)


def test_sink_kinds() -> None:
    assert parse_sink("out.mp4").kind == "video"
    assert parse_sink("out.MKV").kind == "video"
    assert parse_sink("frames/").kind == "images"
    assert parse_sink("rtsp://@:8554/seg").location == ":8554/seg"
    assert parse_sink("display://0").kind == "display"
    for bad, fix in (("out.png", "one image file"), ("out.txt", "cannot tell"), ("rtsp://@/x", "port"),
                     ("udp://x:1", "unknown output scheme")):
        with pytest.raises(SinkError, match=fix):
            parse_sink(bad)


@pytest.mark.parametrize(("text", "shown"), [
    ("rtsp://admin:S3cret@cam:554/live", "rtsp://admin:***@cam:554/live"),
    ("open 'rtsp://admin:p@ss:w0rd@10.0.0.2/x' (refused)", "open 'rtsp://admin:***@10.0.0.2/x' (refused)"),
    ("http://u:v@host and rtsps://w:x@y:1/z", "http://u:***@host and rtsps://w:***@y:1/z"),
    ("rtsp://admin@cam/live, rtsp://@:8554/out, out.mp4", "rtsp://admin@cam/live, rtsp://@:8554/out, out.mp4"),
])
def test_passwords_are_masked_wherever_a_url_stands(text: str, shown: str) -> None:
    assert mask_credentials(text) == shown


def test_video_errors_never_hold_a_password() -> None:
    assert str(SourceError("reading rtsp://a:hunter2@cam/x failed")) == "reading rtsp://a:***@cam/x failed"


@pytest.mark.fault
@pytest.mark.parametrize(("uri", "fix"), [
    ("rtsp://viewer:pw@:8554/seg", "takes no login in its URI"),
    ("rtsp://camera.local:8554/seg", "is not an IP address"),
    ('rtsp://@:8554/seg" ! fakesink', "the mount path"),
    ("rtsp://@:8554/a b", "the mount path"),
    ("rtsp://@:70000/seg", "port"),
])
def test_bad_rtsp_outputs_name_the_fix(uri: str, fix: str) -> None:
    with pytest.raises(SinkError, match=fix):
        parse_sink(uri)


def test_rtsp_output_address_defaults_to_loopback() -> None:
    assert RtspAccess().bind_host("") == "127.0.0.1"
    assert RtspAccess(host="0.0.0.0").bind_host("") == "0.0.0.0"
    assert RtspAccess().bind_host("localhost") == "127.0.0.1"
    assert RtspAccess(host="0.0.0.0").bind_host("0.0.0.0") == "0.0.0.0"
    with pytest.raises(SinkError, match="give one of them"):
        RtspAccess(host="0.0.0.0").bind_host("127.0.0.1")


@pytest.mark.fault
def test_rtsp_login_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert RtspAccess().login({}) is None
    assert RtspAccess(user="viewer").login({PASSWORD_ENV: "pw"}) == ("viewer", "pw")
    assert RtspAccess().login({USER_ENV: "viewer", PASSWORD_ENV: "pw"}) == ("viewer", "pw")
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    assert RtspAccess(user="viewer", password_file=secret).login({PASSWORD_ENV: "env"}) == ("viewer", "from-file")
    assert "from-file" not in repr(RtspAccess(user="viewer", password="from-file"))
    for access, environ, fix in ((RtspAccess(user="viewer"), {}, PASSWORD_ENV),
                                 (RtspAccess(), {PASSWORD_ENV: "pw"}, "--rtsp-user"),
                                 (RtspAccess(user="a:b"), {PASSWORD_ENV: "pw"}, "holds ':'"),
                                 (RtspAccess(user="viewer", password_file=tmp_path / "none"), {}, "cannot read")):
        with pytest.raises(SinkError, match=fix):
            access.login(environ)


def test_latest_policy_keeps_newest_and_counts_drops() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(1, "latest")
    for value in range(5):
        buffer.put(value)
    assert buffer.get(0) == 4 and buffer.dropped == 4
    two: FrameBuffer[int] = FrameBuffer(2, "latest")
    for value in range(5):
        two.put(value)
    assert [two.get(0), two.get(0), two.get(0)] == [3, 4, None]


def test_wait_policy_delivers_everything_in_order() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2, "wait")
    received: list[int] = []

    def consume() -> None:
        while (item := buffer.get(1.0)) is not None:
            received.append(item)
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for value in range(50):
        assert buffer.put(value)
    buffer.close()
    consumer.join(5)
    assert received == list(range(50)) and buffer.dropped == 0 and buffer.finished


def test_watchdog_and_backoff() -> None:
    dog = Watchdog(0.05)
    assert not dog.expired()
    time.sleep(0.08)
    assert dog.expired()
    dog.feed()
    assert not dog.expired()
    assert not Watchdog(None).expired()
    backoff = Backoff(initial_s=0.5, max_s=3.0, limit=5)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.exhausted
    backoff.reset()
    assert not backoff.exhausted and backoff.next_delay() == 0.5


def test_h264_writer_finalises_or_leaves_nothing(tmp_path: Path) -> None:
    import av

    target = tmp_path / "clip.mp4"
    writer = H264Writer(target, (33, 65), 10)
    for value in range(12):
        writer.write(np.full((33, 65, 3), value * 20, np.uint8))
    assert not target.exists() and partial_path(target).exists()
    writer.close()
    assert target.exists() and not partial_path(target).exists()
    with av.open(str(target)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (32, 64, 3)
    aborted = H264Writer(tmp_path / "gone.mkv", (32, 32), 10)
    aborted.write(np.zeros((32, 32, 3), np.uint8))
    aborted.abort()
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_h264_writer_writes_yuv420p_high(suffix: str, tmp_path: Path) -> None:
    """Every container the writer takes holds H.264 4:2:0 in the High profile (FFmpeg's reading of it)."""
    writer = H264Writer(tmp_path / f"clip{suffix}", (64, 96), 10)
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(rng.integers(0, 256, (64, 96, 3), np.uint8))
    written = h264_format(writer.close())
    assert (written.codec, written.pix_fmt, written.profile) == ("h264", "yuv420p", "High")


def test_nvdec_reader_choice_and_its_errors(tmp_path: Path) -> None:
    """Video files go to NVDEC only where it is usable; asked for by name elsewhere, the error names the fix."""
    from fornet.runtime.video.nvdec import NvdecReader, nvdec_available
    from fornet.runtime.video.readers import choose_backend

    clip = tmp_path / "clip.mp4"
    writer = H264Writer(clip, (32, 64), 10)
    writer.write(np.zeros((32, 64, 3), np.uint8))
    writer.close()
    video = parse_source(str(clip))
    assert choose_backend(video) == ("nvdec" if nvdec_available() else "pyav")
    assert choose_backend(parse_source("rtsp://127.0.0.1:9/cam")) in ("gstreamer", "pyav")
    assert choose_backend(video, "nvdec") == "nvdec"
    with pytest.raises(SourceError, match="reads video files, not rtsp inputs"):
        NvdecReader(parse_source("rtsp://127.0.0.1:9/cam"))
    if not nvdec_available():
        with pytest.raises(SourceError, match=r"needs PyNvVideoCodec: pip install 'fornet-deploy\[gpu-video\]'"):
            NvdecReader(video)


def test_encoder_choice_and_its_errors() -> None:
    from fornet.runtime.video.encode import choose_encoder, nvenc_opens

    assert choose_encoder("auto") == ("nvenc" if nvenc_opens() else "x264")
    assert choose_encoder("x264") == "x264"
    with pytest.raises(SinkError, match="unknown encoder 'vp9'; choose one of auto, x264, nvenc"):
        choose_encoder("vp9")
    if not nvenc_opens():
        with pytest.raises(SinkError, match=r"NVENC does not open on this machine.*use --encoder x264 or auto"):
            choose_encoder("nvenc")


def test_several_sources_get_their_own_outputs() -> None:
    from fornet.runtime.video.run import sink_uri as _sink_uri

    assert _sink_uri("out/cam.mp4", 1, 2) == "out/cam-1.mp4"
    assert _sink_uri("out/cam.mp4", 0, 1) == "out/cam.mp4"
    assert _sink_uri("rtsp://@:8554/seg", 2, 3) == "rtsp://@:8554/seg-2"
    assert _sink_uri("frames/", 1, 2) == "frames/"
