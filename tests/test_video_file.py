"""Video files through the pipeline: labels equal the Segmenter's, outputs are complete, bad input is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fornet.atomic import temporaries_of
from fornet.calibration.labels import colorize, train_ids_to_label_ids
from fornet.calibration.metrics import ConfusionMatrix
from fornet.cli.run import main as run_main
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.video import (
    JsonLinesSink,
    LabelPngSink,
    PipelineReport,
    VideoFileSink,
    VideoPipeline,
    VideoSource,
)
from fornet.runtime.video.encode import H264Writer, nvenc_opens
from fornet.runtime.video.nvdec import INSTALL, nvdec_available
from fornet.runtime.video.sinks import FrameLine
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import FRAME_SIZE, decode_all, h264_format, pan_clip


def test_pipeline_labels_equal_segmenter_and_miou(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory,
                                                  tmp_path: Path) -> None:
    clip = pan_clip(tmp_path_factory)
    out = tmp_path / "overlay.mp4"
    with Segmenter(lite.onnx, device="cpu") as seg:
        sinks = [VideoFileSink(out, 25), LabelPngSink(tmp_path / "labels", "labelid"),
                 JsonLinesSink(tmp_path / "frames.jsonl", {0: "pan"}, seg.io.num_classes)]
        pipeline = VideoPipeline(seg, [VideoSource(str(clip.path))], sinks, render="overlay", alpha=0.5)
        results = [(r.frame.index, r.labels) for r in pipeline]
        decoded = decode_all(clip.path)
        reference = [seg(frame) for frame in decoded]
    assert [index for index, _ in results] == list(range(len(clip.truth)))
    for (_, labels), expected in zip(results, reference, strict=True):
        np.testing.assert_array_equal(labels, expected)
    matrix = ConfusionMatrix(19)
    for (_, labels), truth in zip(results, clip.truth, strict=True):
        matrix.update(labels, truth)
    print(f"video mIoU (untrained test model) {100 * matrix.miou():.2f}")
    assert 0 <= matrix.miou() <= 1

    assert len(decode_all(out)) == len(clip.truth)
    pngs = sorted((tmp_path / "labels").iterdir())
    assert len(pngs) == len(clip.truth)
    np.testing.assert_array_equal(cv2.imread(str(pngs[3]), cv2.IMREAD_UNCHANGED),
                                  train_ids_to_label_ids(results[3][1]))
    records = FrameLine.read_lines(tmp_path / "frames.jsonl")
    assert [r.frame for r in records] == list(range(len(clip.truth)))
    assert set(records[0].times) == {"decode", "pre", "infer", "post", "render", "encode"}
    assert sum(records[0].histogram) == FRAME_SIZE[0] * FRAME_SIZE[1]
    report = pipeline.report()
    assert report.frames == len(clip.truth) and report.sources[0].dropped == 0


def test_several_sources_share_engine_calls(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory) -> None:
    clip = pan_clip(tmp_path_factory)
    with Segmenter(lite.raw_labels, device="cpu") as seg:
        sources = [VideoSource(str(clip.path), i) for i in range(2)]
        pipeline = VideoPipeline(seg, sources, render="mask", batch=2)
        per_source = {0: [], 1: []}
        for result in pipeline:
            per_source[result.frame.source_id].append(result.frame.index)
    report = pipeline.report()
    assert per_source[0] == per_source[1] == list(range(len(clip.truth)))
    assert report.mean_batch > 1.5 and report.batches < 2 * len(clip.truth)


def test_cli_run_and_report(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    clip = pan_clip(tmp_path_factory)
    out = tmp_path / "mask.mkv"
    status = run_main([str(clip.path), str(out), "--model", str(lite.onnx), "--device", "cpu",
                       "--mask", "--json", str(tmp_path / "report.json"), "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "FPS" in printed and "infer" in printed and "age" in printed
    assert "(pre/infer/post: wall time)" in printed  # CPU pre/post: no CUDA events to read
    ran = "nvenc" if nvenc_opens() else "x264"  # auto: NVENC where the GPU has an encoder
    assert f"{out}: encoder {ran}" in printed
    report = PipelineReport.load(tmp_path / "report.json")
    assert report.frames == len(clip.truth) and report.stage_clock == "wall"
    # the report names the reader that ran: NVDEC where PyNvVideoCodec and a GPU are, else PyAV on the CPU
    assert report.sources[0].backend == ("nvdec" if nvdec_available() else "pyav")
    assert report.encoders == {str(out): ran}
    assert len(decode_all(out)) == len(clip.truth)
    written = h264_format(out)  # 4:2:0 in the High profile: what hardware decoders play
    assert (written.codec, written.pix_fmt, written.profile) == ("h264", "yuv420p", "High")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_leaves_a_playable_video(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                        signum: int) -> None:
    clip = pan_clip(tmp_path_factory, frames=400)
    out = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "fornet.cli.run", str(clip.path), str(out), "--model",
         str(lite.onnx), "--device", "cpu", "--quiet", "--json", str(tmp_path / "report.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not temporaries_of(out) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "outputs finalised" in stderr
    frames = decode_all(out)
    assert 0 < len(frames) < 400
    assert temporaries_of(out) == []
    # Frames read ahead or in flight when the signal came are counted as discarded: the counts add up.
    source = PipelineReport.load(tmp_path / "report.json").sources[0]
    assert source.frames_processed == len(frames)
    assert source.frames_read == source.frames_processed + source.dropped + source.discarded
    assert source.discarded > 0


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return [
        (["/no/such/clip.mp4", str(tmp_path / "o.mp4")], "input file not found"),
        ([str(corrupt), str(tmp_path / "o.mp4")], "corrupt or not a video"),
        (["smb://host/clip.mp4", str(tmp_path / "o.mp4")], "unknown input scheme"),
        (["v4l2:///dev/video97", str(tmp_path / "o.mp4")], "does not exist"),
        (["CLIP", str(blocker / "sub" / "o.mp4")], "a-file is a file, not a directory"),
        (["CLIP", str(blocker / "frames")], "a-file is a file, not a directory"),
        *([] if nvdec_available() else
          [(["CLIP", str(tmp_path / "o.mp4"), "--input-backend", "nvdec"], "needs PyNvVideoCodec: pip install")]),
        *([] if nvenc_opens() else
          [(["CLIP", str(tmp_path / "o.mp4"), "--encoder", "nvenc"], "--encoder nvenc: NVENC does not open")]),
    ]


def test_bad_input_is_a_clear_error(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    clip = pan_clip(tmp_path_factory)
    model = str(lite.onnx)
    for argv, message in _bad_inputs(tmp_path):
        argv = [str(clip.path) if a == "CLIP" else a for a in argv]
        assert run_main([*argv, "--model", model, "--device", "cpu", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "corrupt.mp4"]


def test_no_traceback_from_the_console_script(tmp_path: Path) -> None:
    completed = subprocess.run([sys.executable, "-m", "fornet.cli.run", "rtsp//typo", str(tmp_path / "o.mp4"),
                                "--model", "m.onnx"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "input file not found" in completed.stderr


def test_bench_compares_pipeline_with_segmenter(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory) -> None:
    from fornet.runtime.video.bench import compare_file_pipeline

    clip = pan_clip(tmp_path_factory)
    with Segmenter(lite.onnx, device="cpu") as seg:
        result = compare_file_pipeline(seg, str(clip.path), rounds=1)
    assert result.frames == len(clip.truth) and result.pipeline_fps > 0 and result.segmenter_fps > 0
    assert "pipeline / segmenter" in result.format()


def test_image_folder_in_and_out(lite: LiteExport, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from fornet.runtime.video import ImageFolderSink
    from fornet.runtime.video.synthetic import pan_sequence

    frames = tmp_path / "in"
    frames.mkdir()
    for index, (image, _) in enumerate(pan_sequence(FRAME_SIZE, 3, seed=2)):
        cv2.imwrite(str(frames / f"aachen_000000_00001{index}_leftImg8bit.png"), image)
    with Segmenter(lite.onnx, device="cpu") as seg:
        source = VideoSource(str(frames))
        assert not source.live and source.total_frames == 3
        pipeline = VideoPipeline(seg, [source], [ImageFolderSink(tmp_path / "out", ".png")], render="mask")
        labels = [r.labels for r in pipeline]
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"aachen_000000_00001{i}.png" for i in range(3)]
    np.testing.assert_array_equal(cv2.imread(str(written[1]))[..., ::-1], colorize(labels[1]))


@pytest.mark.gpu
def test_nvdec_reads_the_clip_like_pyav(tmp_path_factory: pytest.TempPathFactory) -> None:
    """NVDEC (PyNvVideoCodec) decodes the clip's frames; colour conversion may differ by a few levels."""
    if not nvdec_available():
        pytest.skip(f"PyNvVideoCodec is not installed: {INSTALL}")
    clip = pan_clip(tmp_path_factory)
    reference = decode_all(clip.path)
    with VideoSource(str(clip.path), backend="auto") as source:
        assert source.backend == "nvdec"
        frames = [frame.image for frame in source]
    assert len(frames) == len(reference)
    for got, expected in zip(frames, reference, strict=True):
        assert got.shape == expected.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - expected).mean() < 3


@pytest.mark.gpu
def test_nvenc_writes_yuv420p_high(tmp_path: Path) -> None:
    """Where the GPU has an encoder, --encoder nvenc files are 4:2:0 High like x264's."""
    if not nvenc_opens():
        pytest.skip("this GPU has no video encoder (H100, H200, Jetson Orin Nano) or no NVIDIA driver")
    writer = H264Writer(tmp_path / "nvenc.mp4", (128, 256), 25, encoder="nvenc")
    for value in range(10):
        writer.write(np.full((128, 256, 3), value * 20, np.uint8))
    written = h264_format(writer.close())
    assert (written.codec, written.pix_fmt, written.profile) == ("h264", "yuv420p", "High")
