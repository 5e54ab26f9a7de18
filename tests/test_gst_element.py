"""The ``fornetseg`` GStreamer element in real ``gst-launch-1.0`` pipelines (videotestsrc, an H.264 file, an RTSP
camera): its label maps equal ``Segmenter``'s on the same frames, which a ``tee`` before the element writes
to a file; and its frame layouts (numpy only) in this process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime import Segmenter
from fornet.runtime.video.gst_element.frames import FrameLayout, to_bgr, write_bgr
from tests.helpers.gst_element import GST_ENV, NEEDS_GST_ENV, element_env, gst_launch, read_frames, read_labels
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import FRAME_SIZE, pan_clip

H, W = 96, 160
TEST_SOURCE = f"videotestsrc pattern=ball num-buffers={{n}} ! video/x-raw,format={{fmt}},width={W},height={H}"


def teed(source: str, element: str, after: str = "fakesink") -> str:
    """``source``'s frames to frames.raw and through ``element`` (src then ``after``, labels to labels.raw)."""
    return (f"{source} ! tee name=t t. ! queue ! filesink location=frames.raw t. ! queue ! {element} name=seg "
            f"! queue ! {after} seg.labels ! queue ! filesink location=labels.raw")


def reference(model: Path, frames: np.ndarray | list[np.ndarray], alpha: float | None = None) -> list:
    with Segmenter(model, device="cpu") as segmenter:
        return [segmenter.segment(frame, overlay_alpha=alpha) for frame in frames]


# -- in gst-launch-1.0 -----------------------------------------------------------------------------------
@NEEDS_GST_ENV
def test_labels_mode_passes_frames_and_gives_segmenter_labels(lite: LiteExport, tmp_path: Path) -> None:
    run = gst_launch(teed(TEST_SOURCE.format(n=6, fmt="BGR"), f"fornetseg model={lite.onnx} mode=labels",
                          "filesink location=out.raw"), tmp_path)
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    frames = read_frames(tmp_path / "frames.raw", H, W)
    labels = read_labels(tmp_path / "labels.raw", H, W)
    assert len(frames) == len(labels) == 6
    np.testing.assert_array_equal(read_frames(tmp_path / "out.raw", H, W), frames)  # untouched
    for got, want in zip(labels, reference(lite.onnx, frames), strict=True):
        np.testing.assert_array_equal(got, want.labels)
    assert len(np.unique(np.stack(labels))) > 1
    latencies = run.latencies
    assert [m.frame for m in latencies] == [1, 2, 3, 4, 5, 6]
    assert all(0 < m.inference_ms <= m.latency_ms for m in latencies)


@NEEDS_GST_ENV
@pytest.mark.parametrize(("fmt", "mode"), [("BGR", "overlay"), ("BGRx", "mask"), ("RGBA", "overlay")])
def test_overlay_and_mask_in_each_packed_format(lite: LiteExport, tmp_path: Path, fmt: str, mode: str) -> None:
    run = gst_launch(teed(TEST_SOURCE.format(n=3, fmt=fmt), f"fornetseg model={lite.onnx} mode={mode} alpha=0.4",
                          "filesink location=out.raw"), tmp_path)
    assert run.returncode == 0, run.output
    channels = 3 if fmt == "BGR" else 4
    frames, out = (read_frames(tmp_path / name, H, W, channels) for name in ("frames.raw", "out.raw"))
    bgr = frames[..., 2::-1] if fmt == "RGBA" else frames[..., :3]
    shown = out[..., 2::-1] if fmt == "RGBA" else out[..., :3]
    with Segmenter(lite.onnx, device="cpu") as segmenter:
        for frame, got in zip(bgr, shown, strict=True):
            result = segmenter.segment(np.ascontiguousarray(frame), overlay_alpha=0.4)
            want = result.overlay if mode == "overlay" else segmenter.io.palette_bgr[result.labels]
            np.testing.assert_array_equal(got, want)
        if channels == 4:
            np.testing.assert_array_equal(out[..., 3], frames[..., 3])  # the fourth byte is kept


@NEEDS_GST_ENV
def test_nv12_frames_are_read_as_videoconvert_reads_them(lite: LiteExport, tmp_path: Path) -> None:
    source = TEST_SOURCE.format(n=3, fmt="NV12")
    pipeline = (f"{source} ! tee name=t t. ! queue ! filesink location=nv12.raw t. ! queue ! videoconvert ! "
                "video/x-raw,format=BGR ! filesink location=frames.raw "
                f"t. ! queue ! fornetseg name=seg model={lite.onnx} mode=mask ! queue ! filesink location=out.raw "
                "seg.labels ! queue ! filesink location=labels.raw")
    run = gst_launch(pipeline, tmp_path)
    assert run.returncode == 0, run.output
    layout = FrameLayout("NV12", W, H, strides=(W, W), offsets=(0, W * H))
    size = W * H * 3 // 2
    nv12 = np.fromfile(tmp_path / "nv12.raw", dtype=np.uint8).reshape(-1, size)
    ours = [to_bgr(frame, layout) for frame in nv12]
    theirs = read_frames(tmp_path / "frames.raw", H, W)
    for mine, gst in zip(ours, theirs, strict=True):  # the same colour matrix; chroma upsampling may differ
        assert np.abs(mine.astype(int) - gst).mean() < 2.0
    for got, want in zip(read_labels(tmp_path / "labels.raw", H, W), reference(lite.onnx, ours), strict=True):
        np.testing.assert_array_equal(got, want.labels)
    masks = np.fromfile(tmp_path / "out.raw", dtype=np.uint8).reshape(-1, size)
    assert len(masks) == 3
    with Segmenter(lite.onnx, device="cpu") as segmenter:
        for mask, frame in zip(masks, ours, strict=True):
            want = segmenter.io.palette_bgr[segmenter(frame)].astype(int)
            assert np.abs(to_bgr(mask, layout).astype(int) - want).mean() < 8.0  # 4:2:0 chroma at class edges


@NEEDS_GST_ENV
def test_batch_holds_frames_and_runs_the_rest_at_eos(lite: LiteExport, tmp_path: Path) -> None:
    run = gst_launch(teed(TEST_SOURCE.format(n=7, fmt="BGR"), f"fornetseg model={lite.raw_labels} batch=3 "
                          "mode=labels"), tmp_path)
    assert run.returncode == 0, run.output
    assert [(m.frame, m.batch) for m in run.latencies] == [(3, 3), (6, 3), (7, 1)]
    frames = read_frames(tmp_path / "frames.raw", H, W)
    labels = read_labels(tmp_path / "labels.raw", H, W)
    assert len(labels) == 7
    for got, want in zip(labels, reference(lite.raw_labels, frames), strict=True):
        np.testing.assert_array_equal(got, want.labels)


@NEEDS_GST_ENV
@pytest.mark.slow
def test_h264_file_in_h264_file_out(lite: LiteExport, tmp_path: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """The issue's pipeline: a decoded file through fornetseg, encoded again with x264enc into MP4."""
    import av

    clip = pan_clip(tmp_path_factory, frames=12)
    height, width = FRAME_SIZE
    source = f"filesrc location={clip.path} ! decodebin ! videoconvert ! video/x-raw,format=BGR"
    run = gst_launch(teed(source, f"fornetseg model={lite.onnx}",
                          "videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4"), tmp_path)
    assert run.returncode == 0, run.output
    frames = read_frames(tmp_path / "frames.raw", height, width)
    labels = read_labels(tmp_path / "labels.raw", height, width)
    assert len(frames) == len(labels) == 12
    for got, want in zip(labels, reference(lite.onnx, frames), strict=True):
        np.testing.assert_array_equal(got, want.labels)
    with av.open(str(tmp_path / "out.mp4")) as container:
        decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(decoded) == 12 and decoded[0].shape == (height, width, 3)


@NEEDS_GST_ENV
@pytest.mark.slow
@pytest.mark.rtsp_server
def test_rtsp_camera(lite: LiteExport, tmp_path: Path, rtsp_server) -> None:  # type: ignore[no-untyped-def]
    height, width = FRAME_SIZE
    source = (f"rtspsrc location=rtsp://127.0.0.1:{rtsp_server.port}/cam protocols=tcp ! rtph264depay ! "
              "h264parse ! decodebin ! videoconvert ! video/x-raw,format=BGR ! identity eos-after=8")
    run = gst_launch(teed(source, f"fornetseg model={lite.onnx} mode=labels"), tmp_path)
    assert run.returncode == 0, run.output
    frames = read_frames(tmp_path / "frames.raw", height, width)
    labels = read_labels(tmp_path / "labels.raw", height, width)
    assert len(frames) == len(labels) >= 7
    for got, want in zip(labels, reference(lite.onnx, frames[:len(labels)]), strict=True):
        np.testing.assert_array_equal(got, want.labels)


@NEEDS_GST_ENV
@pytest.mark.fault
@pytest.mark.parametrize(("props", "message"), [
    ("model=missing.onnx", "fornetseg: cannot open the model: model file not found: missing.onnx"),
    ("mode=labelz", "fornetseg: mode='labelz' is not one of overlay, mask, labels"),
    ("", "fornetseg: no model: set model=PATH"),
    ("device=gpu7", "fornetseg: cannot open the model: --device"),
])
def test_bad_properties_are_gstreamer_errors(lite: LiteExport, tmp_path: Path, props: str, message: str) -> None:
    props = props if "model=" in props or not props else f"model={lite.onnx} {props}"
    run = gst_launch(f"videotestsrc num-buffers=2 ! videoconvert ! fornetseg {props} ! fakesink", tmp_path)
    assert run.returncode != 0
    assert message in run.output, run.output
    assert "ERROR: from element" in run.output and "Traceback" not in run.output


# -- frame layouts, in this process ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["BGR", "BGRx", "RGBA"])
def test_packed_layouts_with_padded_rows(fmt: str) -> None:
    rng = np.random.default_rng(0)
    bpp = 3 if fmt == "BGR" else 4
    height, width, stride = 5, 7, 7 * bpp + 5
    data = bytearray(rng.integers(0, 256, 16 + stride * height, dtype=np.uint8).tobytes())
    layout = FrameLayout(fmt, width, height, strides=(stride,), offsets=(16,))
    pixels = np.frombuffer(bytes(data), np.uint8)[16:].reshape(height, stride)[:, :width * bpp].reshape(height, width,
                                                                                                          bpp)
    want = pixels[..., 2::-1] if fmt == "RGBA" else pixels[..., :3]
    np.testing.assert_array_equal(to_bgr(bytes(data), layout), want)
    drawn = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    before = bytes(data)
    write_bgr(memoryview(data), drawn, layout)
    np.testing.assert_array_equal(to_bgr(bytes(data), layout), drawn)
    changed = np.flatnonzero(np.frombuffer(before, np.uint8) != np.frombuffer(bytes(data), np.uint8))
    rows, columns = np.divmod(changed - 16, stride)
    assert (changed >= 16).all() and (columns < width * bpp).all() and (rows < height).all()
    if bpp == 4:  # the fourth byte is kept
        np.testing.assert_array_equal(np.frombuffer(bytes(data), np.uint8)[16:].reshape(height, stride)
                                      [:, 3:width * 4:4], pixels[..., 3])


@pytest.mark.parametrize(("kr", "kb", "full_range", "white_luma"), [(0.299, 0.114, False, 235),
                                                                    (0.2126, 0.0722, False, 235),
                                                                    (0.299, 0.114, True, 255)])
def test_nv12_round_trip(kr: float, kb: float, full_range: bool, white_luma: int) -> None:
    height, width, stride = 6, 12, 16
    layout = FrameLayout("NV12", width, height, strides=(stride, stride), offsets=(0, stride * height), kr=kr,
                         kb=kb, full_range=full_range)
    bgr = np.zeros((height, width, 3), np.uint8)
    bgr[:, : width // 2] = (30, 140, 220)  # two flat colours meeting at a chroma block's edge: 4:2:0 keeps both
    bgr[:, width // 2:] = 255
    data = bytearray(layout.size)
    write_bgr(memoryview(data), bgr, layout)
    assert np.abs(to_bgr(bytes(data), layout).astype(int) - bgr).max() <= 2
    luma = np.frombuffer(bytes(data), np.uint8)[:stride * height].reshape(height, stride)
    assert (luma[:, width // 2:width] == white_luma).all()
    chroma = np.frombuffer(bytes(data), np.uint8)[stride * height:].reshape(height // 2, stride)
    assert (chroma[:, width:] == 0).all() and (chroma[:, width - 2:width] == 128).all()  # padding kept; white: grey
    with pytest.raises(ValueError, match="needs"):
        to_bgr(bytes(data)[:-1], layout)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="I420"):
        FrameLayout("I420", 4, 4, strides=(4,), offsets=(0,))


_LATENCY_PROBE = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipeline = Gst.parse_launch("videotestsrc is-live=true ! video/x-raw,format=BGR,width=64,height=32,framerate=20/1 ! "
                            "fornetseg name=seg ! fakesink sync=true")
pipeline.get_by_name("seg").set_property("model", sys.argv[1])
pipeline.get_by_name("seg").set_property("batch", int(sys.argv[2]))
pipeline.set_state(Gst.State.PLAYING)
pipeline.get_state(30 * Gst.SECOND)
query = Gst.Query.new_latency()
assert pipeline.query(query)
print("LATENCY", query.parse_latency()[1])
pipeline.set_state(Gst.State.NULL)
"""


@NEEDS_GST_ENV
def test_held_frames_are_in_the_pipeline_latency(lite: LiteExport, tmp_path: Path) -> None:
    """A live pipeline learns that batch=3 holds two frames (100 ms at 20 FPS) before the first is pushed."""
    reported = {}
    for batch in (1, 3):
        done = subprocess.run([str(GST_ENV / "bin" / "python"), "-c", _LATENCY_PROBE, str(lite.raw_labels),
                               str(batch)], cwd=tmp_path, env=element_env(tmp_path), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        reported[batch] = int(done.stdout.split("LATENCY")[1])
    assert reported[3] - reported[1] == 100_000_000


@NEEDS_GST_ENV
@pytest.mark.fault
def test_outside_its_environment_the_element_says_how_to_get_it(tmp_path: Path) -> None:
    env = element_env(tmp_path)
    env["PATH"] = env["PATH"].split(os.pathsep, 1)[1]  # the element's environment not activated
    env.pop("VIRTUAL_ENV")
    done = subprocess.run(["gst-inspect-1.0", "fornetseg"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "fornetseg: not registered" in done.stderr and "make gst-env" in done.stderr, done.stderr
