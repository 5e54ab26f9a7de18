"""The embedding recipes of docs/video.md: ``examples/gst_embed.py`` (``Segmenter`` in an appsink callback and in a
pad probe, the overlay back through an appsrc into an MP4) and ``examples/gst_fornetseg_meta.py`` (the element's
label meta read in an appsink), run under the element's environment (/usr/bin/python3 with its GStreamer) on
frames a ``gst-launch-1.0`` also writes to a file: their labels equal ``Segmenter``'s. And the docs' code is the
examples' code."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime import Segmenter
from tests.helpers.gst_element import NEEDS_GST_ENV, REPO, gst_launch, read_frames, run_example
from tests.helpers.runtime_models import LiteExport

H, W, N = 96, 160, 8
SOURCE = f"videotestsrc pattern=ball num-buffers={N} ! video/x-raw,format=BGR,width={W},height={H}"


@pytest.fixture
def frames(tmp_path: Path) -> np.ndarray:
    """The frames of ``SOURCE``, written by gst-launch-1.0."""
    run = gst_launch(f"{SOURCE} ! filesink location=frames.raw", tmp_path)
    assert run.returncode == 0, run.output
    return read_frames(tmp_path / "frames.raw", H, W)


@NEEDS_GST_ENV
@pytest.mark.parametrize("hook", ["appsink", "probe"])
def test_segmenter_in_a_hook_results_back_through_appsrc(lite: LiteExport, tmp_path: Path, frames: np.ndarray,
                                                         hook: str) -> None:
    import av

    done = run_example("gst_embed.py", ["--model", str(lite.onnx), "--hook", hook, "--source", SOURCE,
                                        "--output", "out.mp4", "--labels", "labels.npy", "--alpha", "0.6"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{N} frames segmented" in done.stdout
    labels = np.load(tmp_path / "labels.npy")
    with av.open(str(tmp_path / "out.mp4")) as container:
        shown = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(labels) == len(shown) == N
    with Segmenter(lite.onnx, device="cpu") as segmenter:
        for frame, got, encoded in zip(frames, labels, shown, strict=True):
            want = segmenter.segment(frame, overlay_alpha=0.6)
            np.testing.assert_array_equal(got, want.labels)
            assert np.abs(encoded.astype(int) - want.overlay).mean() < 6  # H.264 of the overlay, not of the frame
            assert np.abs(encoded.astype(int) - frame).mean() > 3 * np.abs(encoded.astype(int) - want.overlay).mean()


@NEEDS_GST_ENV
def test_element_label_meta_read_in_an_application(lite: LiteExport, tmp_path: Path, frames: np.ndarray) -> None:
    done = run_example("gst_fornetseg_meta.py", ["--model", str(lite.onnx), "--source", SOURCE,
                                                 "--labels", "labels.npy"], tmp_path)
    assert done.returncode == 0, done.stderr
    labels = np.load(tmp_path / "labels.npy")
    assert len(labels) == N and done.stdout.count("frame ") == N
    with Segmenter(lite.onnx, device="cpu") as segmenter:
        for frame, got in zip(frames, labels, strict=True):
            np.testing.assert_array_equal(got, segmenter(frame))


@NEEDS_GST_ENV
@pytest.mark.fault
def test_example_missing_model_is_one_error_line(tmp_path: Path) -> None:
    done = run_example("gst_embed.py", ["--model", "missing.onnx", "--source", SOURCE, "--output", "out.mp4"],
                       tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: model file not found: missing.onnx") and "Traceback" not in done.stderr
    assert not (tmp_path / "out.mp4").exists()


def _lines(code: str) -> list[str]:
    return [line.strip() for line in code.splitlines() if line.strip()]


def test_docs_code_is_the_examples_code() -> None:
    docs = (REPO / "docs" / "video.md").read_text()
    blocks = re.findall(r"\(\.\./(examples/\w+\.py)\)[^\n]*:\n\n```python\n(.*?)```", docs, flags=re.S)
    assert len(blocks) >= 6
    for path, block in blocks:
        source, wanted = _lines((REPO / path).read_text()), _lines(block)
        assert any(source[i:i + len(wanted)] == wanted for i in range(len(source))), f"not in {path}:\n{block}"
