"""NVDEC (PyNvVideoCodec) for network streams: which reader ``auto`` picks, the errors where NVDEC is not usable,
the bounded open of a blocking reader, and (on a GPU machine with PyNvVideoCodec) a real decode of the loopback
RTSP test server compared with PyAV's.

Reconnection with NVDEC is the stream tests' (``STREAM_BACKENDS`` holds ``nvdec`` on a GPU machine): the drop
drill of tests/test_video_rtsp.py and the fail-fast cases of tests/test_video_security.py.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from fornet.cli.run import main as run_main
from fornet.runtime.video import SourceError, VideoSource
from fornet.runtime.video.gst import gst_available
from fornet.runtime.video.nvdec import INSTALL, NvdecReader, NvdecStreamReader, nvdec_available
from fornet.runtime.video.readers import PyAVReader, Unblocked, choose_backend, open_reader
from fornet.runtime.video.stats import PipelineReport
from fornet.runtime.video.uri import SourceSpec, parse_source
from tests.helpers.runtime_models import LiteExport
from tests.helpers.video import FRAME_SIZE, RtspTestServer, fornet_run, free_port

#: PyNvVideoCodec is not installed here: the "needs PyNvVideoCodec" errors can be checked.
NO_PYNVVIDEOCODEC = importlib.util.find_spec("PyNvVideoCodec") is None


def _cpu_stream_reader() -> str:
    """The reader ``auto`` gives an RTSP stream where NVDEC is not usable."""
    return "gstreamer" if gst_available() else "pyav"


def test_auto_reads_rtsp_with_nvdec_only_where_it_is_usable() -> None:
    rtsp = parse_source("rtsp://127.0.0.1:9/cam")
    http = parse_source("http://127.0.0.1:9/stream.m3u8")
    assert choose_backend(rtsp) == ("nvdec" if nvdec_available() else _cpu_stream_reader())
    assert choose_backend(http) == _cpu_stream_reader()  # auto: NVDEC for rtsp:// only
    assert choose_backend(rtsp, "nvdec") == choose_backend(http, "nvdec") == "nvdec"
    assert choose_backend(rtsp, "pyav") == "pyav"


def test_nvdec_refuses_inputs_it_cannot_read() -> None:
    camera = SourceSpec("v4l2:///dev/video0", "v4l2", "/dev/video0")
    with pytest.raises(SourceError, match=r"NVDEC reads video files and rtsp/http streams, not v4l2 inputs; use "
                                          r"--input-backend auto"):
        choose_backend(camera, "nvdec")
    with pytest.raises(SourceError, match="gst inputs need GStreamer; drop --input-backend nvdec"):
        choose_backend(parse_source("gst://videotestsrc ! videoconvert ! appsink"), "nvdec")
    with pytest.raises(SourceError, match="NvdecStreamReader reads rtsp and http"):
        NvdecStreamReader(camera)
    with pytest.raises(SourceError, match="NvdecReader reads video files, not rtsp inputs"):
        NvdecReader(parse_source("rtsp://127.0.0.1:9/cam"))


@pytest.mark.fault
@pytest.mark.skipif(not NO_PYNVVIDEOCODEC, reason="PyNvVideoCodec is installed here")
def test_nvdec_stream_without_pynvvideocodec_names_the_fix(lite: LiteExport,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"rtsp://admin:secret@127.0.0.1:{free_port()}/cam"
    needs = r"--input-backend nvdec needs PyNvVideoCodec: pip install 'fornet-deploy\[gpu-video\]'.*or use " \
            r"--input-backend pyav"
    with pytest.raises(SourceError, match=needs):  # the API
        VideoSource(url, backend="nvdec")
    with pytest.raises(SourceError, match=needs):  # the reader, opened on its thread: the error comes through
        open_reader(parse_source(url), "nvdec", 1, 1.0)
    assert run_main([url, "--model", str(lite.onnx), "--device", "cpu", "--input-backend", "nvdec",
                     "--quiet"]) == 2  # the CLI
    err = capsys.readouterr().err
    assert "error: --input-backend nvdec needs PyNvVideoCodec: pip install" in err, err
    assert "or use --input-backend pyav" in err and "Traceback" not in err and "secret" not in err


@pytest.mark.fault
def test_a_blocked_open_is_bounded(silent_server: int) -> None:
    """A reader whose open hangs (PyAV on a server that never answers, its own timeout 20 s) is given up on
    after ``open_timeout_s``; NVDEC's demuxer, which has no timeout, is opened this way."""
    spec = parse_source(f"rtsp://127.0.0.1:{silent_server}/cam")
    started = time.monotonic()
    with pytest.raises(SourceError, match=rf"rtsp://127.0.0.1:{silent_server}/cam did not answer within 1 s of "
                                          r"opening.*check that the server runs"):
        Unblocked(lambda: PyAVReader(spec, 20.0), spec.display_name, open_timeout_s=1.0)
    assert time.monotonic() - started < 5


@pytest.mark.rtsp_server
def test_auto_report_names_the_stream_reader(rtsp_server: RtspTestServer, lite: LiteExport, tmp_path: Path) -> None:
    """``auto`` reads the stream with NVDEC where it is usable, else on the CPU, and the report says which."""
    expected = "nvdec" if nvdec_available() else _cpu_stream_reader()
    report_path = tmp_path / "report.json"
    run = fornet_run(f"rtsp://127.0.0.1:{rtsp_server.port}/cam", "--model", str(lite.onnx), "--device", "cpu",
                     "--duration-s", "4", "--json", str(report_path), "--quiet")
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    source = PipelineReport.load(report_path).sources[0]
    assert source.backend == expected and source.frames_read > 0
    assert f"/cam [{expected}]" in stdout, stdout


def _frames(reader_backend: str, url: str, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``url`` read by one reader, in order (none dropped)."""
    reader = open_reader(parse_source(url), reader_backend, 1, 5.0)
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + 60
    try:
        while len(frames) < count and time.monotonic() < deadline:
            frame = reader.read(1.0)
            if frame is not None:
                frames.append(frame)
    finally:
        reader.close()
    assert len(frames) == count, f"{reader_backend}: {len(frames)} of {count} frames in 60 s"
    return frames


@pytest.mark.gpu
@pytest.mark.rtsp_server
def test_nvdec_decodes_the_rtsp_stream_like_pyav(rtsp_server: RtspTestServer) -> None:
    """NVDEC decodes the live test stream; each frame matches one of PyAV's (each client gets the pattern from
    its start; H.264 decoding is exact, the conversion to BGR may round differently). A range mistake
    (limited-range black, 16, left as 16) is 16 levels off on the black background."""
    if not nvdec_available():
        pytest.skip(f"NVDEC is not usable: {INSTALL}")
    url = f"rtsp://127.0.0.1:{rtsp_server.port}/cam"
    with VideoSource(url) as source:
        assert source.backend == "nvdec"
        first = source.get(10)
    assert first is not None and first.image.shape == (*FRAME_SIZE, 3) and first.image.dtype == np.uint8
    decoded = _frames("nvdec", url, 30)
    reference = _frames("pyav", url, 60)
    for index, frame in enumerate(decoded):
        assert frame.shape == (*FRAME_SIZE, 3) and frame.dtype == np.uint8
        closest = min(np.abs(frame.astype(int) - expected).mean() for expected in reference)
        assert closest < 2, f"frame {index}: no PyAV frame within 2 levels (closest {closest:.2f})"


# ------------------------------------------------------------------ frames that stay on the GPU

def test_cpu_readers_keep_host_frames_when_a_pipeline_asks_for_device_frames(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Only NVDEC decodes into device memory: a CPU reader says no, and its frames stay NumPy arrays."""
    from fornet.runtime.video.readers import decode_to_device
    from tests.helpers.video import pan_clip

    clip = pan_clip(tmp_path_factory)
    with VideoSource(str(clip.path), backend="pyav") as source:
        assert source.decode_to_device(True) is False
        frame = next(iter(source))
        assert isinstance(frame.image, np.ndarray)
    reader = open_reader(parse_source(str(clip.path)), "pyav", 2, 5.0)
    try:
        assert decode_to_device(reader, True) is False
    finally:
        reader.close()


@pytest.mark.gpu
def test_nvdec_frames_stay_on_the_gpu_through_a_gpu_prepost_pipeline(
        lite: LiteExport, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Decoder -> pre kernel -> PyTorch -> post/overlay kernels with no frame on the host; the labels agree
    with the same pipeline fed by PyAV's host frames (the decoders differ by a grey level or two)."""
    from fornet.runtime import ModelSpec, Segmenter
    from fornet.runtime.cuda.device_array import DeviceArray
    from fornet.runtime.video import VideoPipeline
    from tests.helpers.video import pan_clip

    if not nvdec_available():
        pytest.skip("needs PyNvVideoCodec (the gpu-video extra)")
    clip = pan_clip(tmp_path_factory)
    spec = ModelSpec(lite.checkpoint, input_size=(64, 128), device="cuda:0")
    with Segmenter(spec) as segmenter:
        assert segmenter.gpu_prepost
        labels: dict[str, list[np.ndarray]] = {}
        for backend in ("nvdec", "pyav"):
            pipeline = VideoPipeline(segmenter, [VideoSource(str(clip.path), backend=backend)], render="overlay")
            results = list(pipeline)
            on_device = {isinstance(result.frame.image, DeviceArray) for result in results}
            assert on_device == {backend == "nvdec"}
            assert all(result.overlay is not None for result in results)
            labels[backend] = [result.labels for result in results]
            assert pipeline.report().stage_clock == "cuda-events"
    assert len(labels["nvdec"]) == len(labels["pyav"]) == len(clip.truth)
    agree = np.mean([np.mean(a == b) for a, b in zip(labels["nvdec"], labels["pyav"], strict=True)])
    assert agree >= 0.98, agree
