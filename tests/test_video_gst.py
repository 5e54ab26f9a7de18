"""``gst://`` inputs through ``fornet run`` (its own process: GStreamer stays out of pytest's): the appsink is
asked for BGR, a pipeline that cannot give it is refused with the fix, a finite pipeline is read as a file to
its end (exit 0, a report), and a live one is written in real time."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime.video import PipelineReport
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import NEEDS_GST, decode_all, fornet_run

pytestmark = NEEDS_GST


def _run(lite: LiteExport, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    run = fornet_run(*args, "--model", str(lite.onnx), "--device", "cpu", "--quiet")
    try:
        stdout, stderr = run.communicate(timeout=timeout_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)


def test_help_example_delivers_bgr_frames_and_a_finite_pipeline_ends(lite: LiteExport, tmp_path: Path) -> None:
    """``videotestsrc ! videoconvert ! appsink`` negotiated ABGR64_LE (stripes); a pipeline with ``num-buffers``
    restarted at every end of stream. Now: red frames stay red, and 5 buffers make 5 frames, exit 0, a report,
    even with ``--max-reconnects 0``."""
    red = "videotestsrc num-buffers=5 pattern=solid-color foreground-color=0xffff0000"
    done = _run(lite, f"gst://{red} ! videoconvert ! appsink", str(tmp_path / "o.mp4"), "--alpha", "0",
                "--max-reconnects", "0", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    report = PipelineReport.load(tmp_path / "r.json")
    assert report.frames == 5 and not report.sources[0].live and report.sources[0].reconnects == 0
    frames = decode_all(tmp_path / "o.mp4")
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3)
    np.testing.assert_allclose(frames[0].reshape(-1, 3).mean(axis=0), [0, 0, 255], atol=12)


def test_input_kind_live_keeps_live_semantics(lite: LiteExport, tmp_path: Path) -> None:
    """``--input-kind live`` makes a finite pipeline live again: its end is a lost stream (with reconnection off,
    an error, exit 2), and the report of the run up to the error is still written (there was none)."""
    done = _run(lite, "gst://videotestsrc num-buffers=5 ! videoconvert ! appsink", "--input-kind", "live",
                "--max-reconnects", "0", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 2 and "reconnection is off" in done.stderr, done.stderr
    assert "\nerror: " in done.stderr and "reconnecting" not in done.stderr and "Traceback" not in done.stderr
    source = PipelineReport.load(tmp_path / "r.json").sources[0]
    assert source.live and source.frames_processed > 0 and "reconnection is off" in (source.error or "")


@pytest.mark.fault
@pytest.mark.parametrize(("pipeline", "fix"), [
    ("videotestsrc num-buffers=3 ! videoconvert ! appsink caps=video/x-raw,format=RGBA", "drop its caps="),
    ("videotestsrc num-buffers=3 ! video/x-raw,format=RGBA ! appsink", "it cannot deliver video/x-raw,format=BGR"),
])
def test_a_pipeline_that_cannot_give_bgr_is_refused_with_the_fix(lite: LiteExport, tmp_path: Path, pipeline: str,
                                                                 fix: str) -> None:
    done = _run(lite, f"gst://{pipeline}", str(tmp_path / "o.mp4"))
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr
    assert fix in done.stderr and "videoconvert ! appsink" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


def test_a_live_video_plays_in_real_time(lite: LiteExport, tmp_path: Path) -> None:
    """A 5 FPS live source written at the default 25 FPS: frames are stamped with their capture times, so 3 s of
    capture play for about 3 s (a frame counter made it 0.6 s)."""
    source = "videotestsrc is-live=true ! video/x-raw,framerate=5/1,width=128,height=64 ! videoconvert ! appsink"
    done = _run(lite, f"gst://{source}", str(tmp_path / "o.mp4"), "--duration-s", "3")
    assert done.returncode == 0, done.stderr
    import av

    with av.open(str(tmp_path / "o.mp4")) as container:
        stream = container.streams.video[0]
        times = [float(frame.pts * stream.time_base) for frame in container.decode(stream)]
    assert len(times) >= 8 and times[-1] - times[0] > 2.0, times


def test_a_finite_pipeline_is_read_as_fast_as_it_is_segmented(lite: LiteExport, tmp_path: Path) -> None:
    """Read as a file, a pipeline is not paced by its clock (6 frames at 1 FPS took 5 s), and its appsink holds
    at most ``--buffer`` frames (as written it queues without bound)."""
    pipeline = "videotestsrc num-buffers=6 ! video/x-raw,framerate=1/1,width=128,height=64 ! videoconvert ! appsink"
    done = _run(lite, f"gst://{pipeline}", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    report = PipelineReport.load(tmp_path / "r.json")
    assert report.frames == 6 and report.seconds < 3.5, report.seconds
