"""Unit tests of the video building blocks: URIs, buffer policies, watchdog and backoff, H.264 writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fornet.atomic import temporaries_of
from fornet.redact import mask_credentials
from fornet.runtime.video.buffer import FrameBuffer
from fornet.runtime.video.encode import CONTAINERS, H264Writer
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
    assert not target.exists() and len(temporaries_of(target)) == 1
    writer.close()
    assert target.exists() and temporaries_of(target) == []
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


def test_finite_gst_pipelines_are_read_as_files() -> None:
    assert parse_source("gst://videotestsrc ! videoconvert ! appsink").live
    assert not parse_source("gst://videotestsrc num-buffers=20 ! videoconvert ! appsink").live
    assert not parse_source("gst://filesrc location=a.mp4 ! decodebin ! videoconvert ! appsink").live
    assert not parse_source("gst://multifilesrc location=f%05d.png ! pngdec ! videoconvert ! appsink").live
    assert parse_source("rtsp://127.0.0.1:8554/cam").live


def test_h264_writer_stamps_capture_times(tmp_path: Path) -> None:
    """Frames given times play at those times (a gap stays a gap); without times they follow at the frame rate."""
    import av

    target = tmp_path / "live.mp4"
    writer = H264Writer(target, (32, 32), 25, timed=True)
    for time_s in (0.0, 0.033, 0.2, 0.2002, 2.0):  # faster than 25 FPS; 0.2002 rounds onto 0.2: 1 ms later
        writer.write(np.zeros((32, 32, 3), np.uint8), time_s)
    writer.close()
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        times = sorted(float(frame.pts * stream.time_base) for frame in container.decode(stream))
    assert times == pytest.approx([0.0, 0.033, 0.2, 0.201, 2.0], abs=1e-4)


def _message_flags() -> list[tuple[str, str, str]]:
    """``(module, flag, value)`` for every ``--flag [value]`` in a message (not a docstring) of ``fornet run``'s
    modules; ``value`` is the word after the flag ("" when none)."""
    import ast
    import re

    root = Path(__file__).resolve().parents[1]
    modules = [*sorted((root / "runtime" / "video").glob("*.py")), root / "fornet" / "cli" / "run.py"]
    found = []
    for path in modules:
        if path.name in ("bench.py", "synthetic.py"):  # fornet bench's (--video), fornet data video's
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                      and ast.get_docstring(node, clean=False) is not None}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for flag, value in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)(?: ([a-z0-9|]+))?", node.value):
                    found.append((path.name, flag, value))
    return found


def test_messages_name_flags_that_fornet_run_has() -> None:
    """Every flag a message names is one of ``fornet run``'s, and a value it suggests is one the flag takes
    (``--backend pyav`` named the model's backend flag for the input's library)."""
    from fornet.cli.run import COMMAND

    actions = {flag: action for action in COMMAND.parser()._actions for flag in action.option_strings}
    found = _message_flags()
    assert ("readers.py", "--input-backend", "pyav|gstreamer") in found
    other_tools = {"--list-devices"}  # v4l2-ctl's
    for module, flag, value in found:
        if flag in other_tools:
            continue
        assert flag in actions, f"{module} names {flag}, which fornet run does not have"
        choices = actions[flag].choices
        if value and choices is not None:
            assert set(value.split("|")) <= set(choices), f"{module}: {flag} takes {choices}, not {value}"


def test_reports_and_records_of_the_previous_layout_still_load(tmp_path: Path) -> None:
    """A version 1 report (no run, no discarded or warning) and a version 1 frame line (no file) load; the
    discarded frames of an old report are what its counts left over."""
    import json

    from fornet.runtime.video import PipelineReport
    from fornet.runtime.video.sinks import FrameLine

    summary = {"median_ms": 1.0, "p90_ms": 2.0, "mean_ms": 1.5, "count": 3}
    old = {"format": "fornet-deploy/video-report/1", "frames": 3, "seconds": 1.0, "fps": 3.0, "batches": 3,
           "mean_batch": 1.0, "stages": {"infer": summary}, "age": summary,
           "sources": [{"name": "a.mp4", "live": False, "backend": "pyav", "frames_read": 7, "frames_processed": 3,
                        "dropped": 0, "reconnects": 0, "gaps": [], "error": None}]}
    (tmp_path / "r.json").write_text(json.dumps(old))
    report = PipelineReport.load(tmp_path / "r.json")
    assert report.run is None and report.sources[0].discarded == 4 and report.sources[0].warning is None
    line = {"format": "fornet-deploy/video-frame/1", "source": "a", "source_id": 0, "frame": 1, "capture_time": 1.0,
            "result_time": 1.5, "age_s": 0.5, "times": {"infer": 0.1}, "histogram": [1, 2]}
    (tmp_path / "f.jsonl").write_text(json.dumps(line) + "\n")
    assert FrameLine.read_lines(tmp_path / "f.jsonl")[0].file is None
