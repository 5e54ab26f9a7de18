"""Pipeline FPS next to the Segmenter's own end-to-end FPS, measured in the same run.

:func:`compare_file_pipeline` decodes a video file once into memory and times, interleaved over
``rounds``:

* **segmenter end to end**: ``segmenter(frame)`` on every decoded frame (pre, inference, post), one
  after another, nothing else running;
* **pipeline**: ``VideoPipeline`` from the file to an overlay H.264 file (decode, segmentation,
  overlay and encoding overlapped in threads), frames / wall time from start to the finalised file.

The ratio says how much of the segmenter's speed survives real decoding and encoding around it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fornet.options import OptionGroup, option
from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.pipeline import VideoPipeline
from fornet.runtime.video.sinks import VideoFileSink
from fornet.runtime.video.sources import VideoSource
from fornet.runtime.video.stats import PipelineReport
from fornet.runtime.video.uri import parse_source

VIDEO = OptionGroup("video pipeline")


@dataclass(frozen=True)
class VideoBench:
    """The video pipeline timed next to the segmenter (``fornet bench --video``)."""

    video: Path | None = option(None, flag="--video", parse=Path, metavar="FILE", group=VIDEO,
                                help="also time the video pipeline (decode + segment + overlay + H.264) on FILE "
                                     "next to the segmenter's end-to-end FPS on the same frames")


@dataclass(frozen=True)
class VideoBenchResult:
    """Median FPS of each scope over the rounds, with every round's value."""

    frames: int
    pipeline_fps: float
    segmenter_fps: float
    pipeline_rounds: tuple[float, ...]
    segmenter_rounds: tuple[float, ...]
    #: The last pipeline round's report: per-stage times, frame age and which reader ran.
    report: PipelineReport

    @property
    def ratio(self) -> float:
        """Pipeline FPS / segmenter end-to-end FPS."""
        return self.pipeline_fps / self.segmenter_fps

    def format(self) -> str:
        """Two lines for the terminal."""
        spread = max(self.pipeline_rounds) - min(self.pipeline_rounds)
        readers = ", ".join(source.backend for source in self.report.sources)
        return (f"video pipeline (decode + segment + overlay + H.264, {self.frames} frames): "
                f"{self.pipeline_fps:.1f} FPS (spread {spread:.1f}), reader {readers}, frame age p90 "
                f"{self.report.age.p90_ms:.1f} ms\n"
                f"segmenter end to end alone (same frames, in memory): {self.segmenter_fps:.1f} FPS; "
                f"pipeline / segmenter = {100 * self.ratio:.0f}%")


def _decode(path: str) -> list:
    import av

    with av.open(path) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def compare_file_pipeline(segmenter: Segmenter, video: str, rounds: int = 3, alpha: float = 0.5) -> VideoBenchResult:
    """Time both scopes on ``video`` (see the module docstring); one untimed warm-up call first."""
    frames = _decode(video)
    segmenter(frames[0])
    pipeline_fps: list[float] = []
    segmenter_fps: list[float] = []
    report: PipelineReport | None = None
    with tempfile.TemporaryDirectory(prefix="fornet-video-bench-") as folder:
        for _ in range(rounds):
            start = time.perf_counter()
            for frame in frames:
                segmenter(frame)
            segmenter_fps.append(len(frames) / (time.perf_counter() - start))
            start = time.perf_counter()
            pipeline = VideoPipeline(segmenter, [VideoSource(video)], [VideoFileSink(Path(folder) / "out.mp4")],
                                     render="overlay", alpha=alpha)
            count = sum(1 for _ in pipeline)
            pipeline_fps.append(count / (time.perf_counter() - start))
            report = pipeline.report()
    if report is None:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    return VideoBenchResult(len(frames), statistics.median(pipeline_fps), statistics.median(segmenter_fps),
                            tuple(pipeline_fps), tuple(segmenter_fps), report)


def video_bench(spec: ModelSpec, video: Path) -> VideoBenchResult:
    """Open the model of ``spec`` and compare the pipeline with the segmenter on the video file ``video``."""
    source = parse_source(str(video))
    if source.kind != "video":
        raise SourceError(f"--video takes a video file, not a {source.kind} input; pass e.g. clip.mp4")
    with Segmenter(spec) as segmenter:
        return compare_file_pipeline(segmenter, source.location)
