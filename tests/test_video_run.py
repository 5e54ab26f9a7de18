"""``fornet run`` as a user meets it: reports whose counts add up and name what made them, outputs checked
before the work and named after their inputs, one permission rule, nothing left of a killed run, and the
weak inputs (a truncated file, images of mixed sizes, an earlier run's label folder) said out loud."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from fornet.atomic import temporaries_of
from fornet.cli.run import main as run_main
from fornet.export.staging import staged_folder
from fornet.runtime.video import PipelineReport
from fornet.runtime.video.sinks import FrameLine
from fornet.runtime.video.synthetic import pan_sequence
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import FRAME_SIZE, decode_all, pan_clip


def _run(lite: LiteExport, *args: str) -> int:
    return run_main([*args, "--model", str(lite.onnx), "--device", "cpu", "--quiet"])


def _images(folder: Path, names: list[str], sizes: list[tuple[int, int]] | None = None) -> Path:
    folder.mkdir(parents=True)
    for index, (name, (image, _)) in enumerate(zip(names, pan_sequence(FRAME_SIZE, len(names), seed=3),
                                                   strict=True)):
        if sizes is not None:
            image = cv2.resize(image, sizes[index][::-1])
        cv2.imwrite(str(folder / name), image)
    return folder


def test_max_frames_counts_add_up_and_the_report_names_the_run(lite: LiteExport, tmp_path: Path,
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """``--max-frames 5``: 5 engine calls and 5 frames read (it reported 6 calls and 11 read); the report names
    the model, backend, device, command and versions."""
    clip = pan_clip(tmp_path_factory)
    report_path = tmp_path / "report.json"
    assert _run(lite, str(clip.path), str(tmp_path / "o.mp4"), "--max-frames", "5", "--json", str(report_path)) == 0
    report = PipelineReport.load(report_path)
    source = report.sources[0]
    assert report.frames == 5 and report.batches == 5
    assert (source.frames_read, source.frames_processed, source.dropped, source.discarded) == (5, 5, 0, 0)
    assert report.run is not None
    assert report.run.model == str(lite.onnx) and report.run.backend == "onnxruntime" and report.run.device == "cpu"
    assert report.run.command.startswith("fornet run ") and "--max-frames 5" in report.run.command
    assert report.run.versions["onnxruntime"] and report.run.versions["fornet-deploy"]
    assert len(decode_all(tmp_path / "o.mp4")) == 5


@pytest.mark.fault
def test_output_paths_are_checked_before_the_work(lite: LiteExport, tmp_path: Path,
                                                  tmp_path_factory: pytest.TempPathFactory,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A folder named like a video, or ``--jsonl DIR``: one clear error up front, no partial file anywhere."""
    clip = pan_clip(tmp_path_factory)
    (tmp_path / "d2.mp4").mkdir()
    (tmp_path / "records").mkdir()
    cases = [([str(clip.path), str(tmp_path / "d2.mp4")], "OUTPUT"),
             ([str(clip.path), str(tmp_path / "o.mp4"), "--jsonl", str(tmp_path / "records")], "--jsonl"),
             ([str(clip.path), "--labels", str(clip.path)], "--labels")]
    for argv, flag in cases:
        started = time.monotonic()
        assert _run(lite, *argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} ") and ("is a directory" in err or "is a file" in err), err
        assert time.monotonic() - started < 5  # before the model and the input are opened
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["d2.mp4", "records"]


def test_image_inputs_keep_their_names(lite: LiteExport, tmp_path: Path) -> None:
    """Cityscapes names in, the evaluator's names out (``<city>_<seq>_<frame>_labelIds.png``); the records name
    each frame's file."""
    names = ["frankfurt_000000_000294_leftImg8bit.png", "frankfurt_000000_000576_leftImg8bit.png"]
    frames = _images(tmp_path / "in", names)
    assert _run(lite, str(frames), str(tmp_path / "overlays"), "--labels", str(tmp_path / "labels"),
                "--label-encoding", "labelid", "--jsonl", str(tmp_path / "frames.jsonl")) == 0
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        "frankfurt_000000_000294_labelIds.png", "frankfurt_000000_000576_labelIds.png"]
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == [
        "frankfurt_000000_000294.jpg", "frankfurt_000000_000576.jpg"]
    records = FrameLine.read_lines(tmp_path / "frames.jsonl")
    assert [Path(r.file or "").name for r in records] == names


@pytest.fixture
def umask_002() -> Iterator[None]:
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_002")
def test_every_output_gets_the_same_permissions(lite: LiteExport, tmp_path: Path,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """Files 0666 and folders 0777 less the umask: the JSONL records (0600 before) like the video and the labels,
    and the staged package folders of ``--triton``/``--deepstream`` (0700 before)."""
    clip = pan_clip(tmp_path_factory)
    assert _run(lite, str(clip.path), str(tmp_path / "o.mp4"), "--max-frames", "2", "--jsonl",
                str(tmp_path / "f.jsonl"), "--labels", str(tmp_path / "labels"), "--json",
                str(tmp_path / "r.json")) == 0
    for name in ("o.mp4", "f.jsonl", "r.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o664, name
    assert (tmp_path / "labels").stat().st_mode & 0o777 == 0o775
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "labels").iterdir()} == {0o664}
    with staged_folder(tmp_path / "repo", "triton model repository") as staging:
        (staging / "config.pbtxt").write_text("")
    assert (tmp_path / "repo").stat().st_mode & 0o777 == 0o775


@pytest.mark.fault
def test_a_killed_run_leaves_nothing_the_next_run_does_not_clean(lite: LiteExport, tmp_path: Path,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """SIGKILL leaves the video's and the records' temporary files; the next run into the same files removes them
    (docs/reliability.md)."""
    clip = pan_clip(tmp_path_factory, frames=400)
    out, records = tmp_path / "out.mp4", tmp_path / "frames.jsonl"
    killed = subprocess.Popen([sys.executable, "-m", "fornet.cli.run", str(clip.path), str(out), "--jsonl",
                               str(records), "--model", str(lite.onnx), "--device", "cpu", "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not temporaries_of(out) and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
    assert temporaries_of(out) and temporaries_of(records)
    assert _run(lite, str(pan_clip(tmp_path_factory).path), str(out), "--jsonl", str(records),
                "--max-frames", "2") == 0
    assert temporaries_of(out) == temporaries_of(records) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.jsonl", "out.mp4"]


@pytest.mark.fault
def test_a_truncated_file_is_reported(lite: LiteExport, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    """An MP4 with its index first, cut short: the frames it has are segmented, and the run says it ended early
    (it exited 0 silently after 19 of 100 frames)."""
    import av

    clip = tmp_path / "whole.mp4"
    with av.open(str(clip), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = FRAME_SIZE[1], FRAME_SIZE[0], "yuv420p"
        for image, _ in pan_sequence(FRAME_SIZE, 100, seed=4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(clip)) as container:  # cut after the 25th packet (a download cut short)
        packets = [p for p in container.demux(video=0) if p.size]
        end = max(p.pos + p.size for p in packets[:25])
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[:end])
    assert _run(lite, str(truncated), "--json", str(tmp_path / "r.json")) == 0
    source = PipelineReport.load(tmp_path / "r.json").sources[0]
    assert 0 < source.frames_read < 100
    assert source.warning is not None and f"{source.frames_read} of the 100 frames" in source.warning
    assert "truncated or damaged" in caplog.text and "warning: ended after" in capsys.readouterr().out


def test_images_of_mixed_sizes_are_resized_with_a_warning(lite: LiteExport, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The video takes the first image's size and says so; the label PNGs keep each image's own size."""
    frames = _images(tmp_path / "in", ["a.png", "b.png"], sizes=[FRAME_SIZE, (96, 160)])
    assert _run(lite, str(frames), str(tmp_path / "o.mp4"), "--labels", str(tmp_path / "labels")) == 0
    assert "frame b is 160x96, not the video's 256x128" in caplog.text and "resized" in caplog.text
    assert [f.shape[:2] for f in decode_all(tmp_path / "o.mp4")] == [FRAME_SIZE, FRAME_SIZE]
    assert cv2.imread(str(tmp_path / "labels" / "b_labelTrainIds.png"), cv2.IMREAD_UNCHANGED).shape == (96, 160)


@pytest.mark.fault
def test_labels_of_an_earlier_run_are_not_mixed_in(lite: LiteExport, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A second, shorter run into the same ``--labels`` folder is refused; with ``--overwrite`` the folder holds
    the second run's labels only."""
    longer = _images(tmp_path / "long", ["a.png", "b.png", "c.png"])
    shorter = _images(tmp_path / "short", ["x.png"])
    labels = tmp_path / "labels"
    assert _run(lite, str(longer), "--labels", str(labels)) == 0
    assert _run(lite, str(shorter), "--labels", str(labels)) == 2
    err = capsys.readouterr().err
    assert "earlier run" in err and "--overwrite" in err
    assert len(list(labels.iterdir())) == 3
    (tmp_path / "no-model.onnx").write_bytes(b"")  # a run that fails before its first frame removes nothing
    assert run_main([str(shorter), "--labels", str(labels), "--overwrite", "--model", str(tmp_path / "no-model.onnx"),
                     "--device", "cpu", "--quiet"]) == 2
    assert len(list(labels.iterdir())) == 3
    assert _run(lite, str(shorter), "--labels", str(labels), "--overwrite") == 0
    assert [p.name for p in labels.iterdir()] == ["x_labelTrainIds.png"]


@pytest.mark.fault
def test_errors_name_the_input_backend_flag(lite: LiteExport, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``--input-backend`` is the flag that picks the input's library (the messages said ``--backend``, the model's)."""
    assert _run(lite, "gst://videotestsrc ! videoconvert ! appsink", "--input-backend", "pyav") == 2
    assert "drop --input-backend pyav" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    assert _run(lite, str(corrupt), "--input-backend", "opencv") == 2
    assert "--input-backend pyav|gstreamer" in capsys.readouterr().err


@pytest.mark.fault
def test_image_inputs_with_the_same_names_are_refused(lite: LiteExport, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Two image inputs holding ``a.png`` would write the same ``a_labelTrainIds.png``: refused before the work."""
    first = _images(tmp_path / "one", ["a.png", "b.png"])
    second = _images(tmp_path / "two", ["a.png"])
    assert _run(lite, str(first), "--add-input", str(second), "--labels", str(tmp_path / "labels")) == 2
    err = capsys.readouterr().err
    assert "both hold an image named a" in err and "overwrite each other" in err
    assert not (tmp_path / "labels").exists()
