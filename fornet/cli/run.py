"""``fornet run`` (alias ``fornet-run``): segment a video, camera, stream or image folder.

In the manner of jetson-inference's ``segnet INPUT OUTPUT``; see docs/video.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from fornet.cli.command import Command
from fornet.errors import FornetError
from fornet.runtime.bench.runner import device_arg

EPILOG = """inputs:  video.mp4 | file:///path | frames/ | "shots/*.jpg" | v4l2:///dev/video0 | csi://0 |
         rtsp://user:pass@host:8554/path | http(s)://... | "gst://videotestsrc ! videoconvert ! appsink"
outputs: out.mp4 | out.mkv | folder/ | rtsp://@:8554/out | display://0

examples:
  fornet run video.mp4 overlay.mp4 --model export/fornet.onnx
  fornet run rtsp://cam/live rtsp://@:8554/seg --model export/fornet_fp16.plan --watchdog-s 3
  fornet run drive.mkv --model fornet.onnx --mask --labels labels/ --label-encoding labelid --jsonl frames.jsonl
  fornet run rtsp://cam1/live cams.mp4 --add-input rtsp://cam2/live --model fornet.plan --report report.json

Live inputs keep only the newest frame (drops are counted; --buffer N keeps N); files deliver
every frame. SIGTERM or Ctrl-C finishes cleanly (the video stays playable); SIGUSR1 prints the
timing so far.
"""


class RunError(FornetError):
    """Options of ``fornet run`` that do not fit together."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fornet run``."""
    parser.add_argument("input", metavar="INPUT", help="video, image(s), camera or stream (see below)")
    parser.add_argument("output", metavar="OUTPUT", nargs="?",
                        help="video file, image folder, rtsp://@:PORT/path or display://0 (optional)")
    parser.add_argument("--add-input", action="append", default=[], metavar="URI",
                        help="another source, batched with INPUT into the same engine calls (repeatable)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", "-m", required=True, type=Path, metavar="PATH",
                       help="a TensorRT plan, an ONNX file (with its sidecar) or a checkpoint")
    model.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto",
                       help="inference backend (default: from the extension)")
    model.add_argument("--device", type=device_arg, default=0, metavar="N|cpu", help="GPU index or cpu (default: 0)")
    model.add_argument("--threads", type=int, metavar="N", help="CPU threads of ONNX Runtime / PyTorch")
    model.add_argument("--batch", type=int, metavar="N",
                       help="frames per engine call (default: the engine's batch, else one per source)")
    view = parser.add_argument_group("rendering")
    mode = view.add_mutually_exclusive_group()
    mode.add_argument("--overlay", dest="render", action="store_const", const="overlay",
                      help="blend the class colours over the frame (default)")
    mode.add_argument("--mask", dest="render", action="store_const", const="mask", help="the class colours alone")
    view.add_argument("--alpha", type=float, default=0.5, help="overlay opacity, 0..1 (default: 0.5)")
    view.add_argument("--fps", type=_positive_float, metavar="F",
                      help="frame rate written into video/RTSP outputs (default: the input's, else 25)")
    extra = parser.add_argument_group("more outputs")
    extra.add_argument("--labels", type=Path, metavar="DIR", help="a label PNG per frame into DIR")
    extra.add_argument("--label-encoding", choices=("trainid", "labelid"), default="trainid",
                       help="label PNG values: Cityscapes trainIds (0..18, 255) or labelIds (default: trainid)")
    extra.add_argument("--jsonl", type=Path, metavar="FILE",
                       help="one JSON record per frame (source, index, timestamps, stage times, class histogram)")
    extra.add_argument("--report", type=Path, metavar="FILE", help="the timing summary as JSON at the end")
    live = parser.add_argument_group("inputs")
    live.add_argument("--input-backend", choices=("auto", "pyav", "opencv", "gstreamer"), default="auto",
                      help="library that reads the inputs (default: GStreamer for streams and cameras when "
                           "python3-gi is reachable, else PyAV/OpenCV)")
    live.add_argument("--buffer", type=int, metavar="N",
                      help="frames buffered per input (default: 1, the newest, for live inputs; 4 for files)")
    live.add_argument("--watchdog-s", type=_positive_float, default=5.0, metavar="S",
                      help="reconnect a live input after S seconds without a frame (default: 5)")
    live.add_argument("--max-reconnects", type=_count, metavar="N",
                      help="give up after N failed reconnection attempts in a row (default: never)")
    stop = parser.add_argument_group("stopping and progress")
    stop.add_argument("--max-frames", type=_count, metavar="N", help="stop after N segmented frames")
    stop.add_argument("--duration-s", type=_positive_float, metavar="S", help="stop after S seconds")
    stop.add_argument("--quiet", action="store_true", help="no progress line")


def _sink_uri(uri: str, source_id: int, count: int) -> str:
    """With several sources each gets its own video file, RTSP mount or window: ``name-<id>``."""
    from fornet.runtime.video.uri import parse_sink

    spec = parse_sink(uri)
    if count == 1 or spec.kind == "images":
        return uri
    if spec.kind == "video":
        path = Path(spec.location)
        return str(path.with_name(f"{path.stem}-{source_id}{path.suffix}"))
    if spec.kind == "rtsp":
        return f"{uri.rstrip('/')}-{source_id}"
    return f"display://{source_id}"


class _Progress:
    """A one-line progress report on stderr, at most once a second."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._last = 0.0

    def update(self, frames: int, fps: float, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 1.0):
            return
        self._last = now
        of = f"/{self.total}" if self.total else ""
        print(f"\rframe {frames}{of}  {fps:.1f} FPS", end="\n" if final else "", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Open the inputs, outputs and model, then run the pipeline until the inputs end or a signal."""
    from fornet.runtime.segmenter import Segmenter
    from fornet.runtime.video import JsonLinesSink, LabelPngSink, VideoPipeline, VideoSource, open_sink

    if not 0 <= args.alpha <= 1:
        raise RunError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.output is None and not (args.labels or args.jsonl or args.report):
        print("note: no OUTPUT, --labels or --jsonl given: frames are segmented and timed only", file=sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    uris = [args.input, *args.add_input]
    sources: list[VideoSource] = []
    sinks = []
    try:
        for index, uri in enumerate(uris):
            sources.append(VideoSource(uri, index, backend=args.input_backend, buffer=args.buffer,
                                       watchdog_s=args.watchdog_s, max_reconnects=args.max_reconnects))
        fps = args.fps or sources[0].fps or 25.0
        if args.output is not None:
            sinks += [open_sink(_sink_uri(args.output, s.source_id, len(sources)), fps, s.source_id) for s in sources]
        if args.labels is not None:
            sinks.append(LabelPngSink(args.labels, args.label_encoding))
        segmenter = Segmenter(args.model, args.backend, args.device, threads=args.threads)
    except BaseException:
        for source in sources:
            source.close()
        raise
    with segmenter:
        if args.jsonl is not None:
            sinks.append(JsonLinesSink(args.jsonl, {s.source_id: s.name for s in sources}, segmenter.io.num_classes))
        render = args.render or "overlay"
        if args.output is None:
            render = "none"
        pipeline = VideoPipeline(segmenter, sources, sinks, render=render, alpha=args.alpha, batch=args.batch,
                                 max_frames=args.max_frames, duration_s=args.duration_s)
        stopped_by: list[int] = []

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            if stopped_by:  # a second Ctrl-C: stop waiting
                raise KeyboardInterrupt
            stopped_by.append(signum)
            pipeline.stop()

        def on_report(_signum: int, _frame: FrameType | None) -> None:
            print(pipeline.report().format(), file=sys.stderr, flush=True)

        previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_report)
        total = sources[0].total_frames if len(sources) == 1 else None
        progress = _Progress(total, not args.quiet and sys.stderr.isatty())
        try:
            for _ in pipeline:
                progress.update(pipeline.stats.frames, pipeline.stats.frames / max(pipeline.report().seconds, 1e-9))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        report = pipeline.report()
        progress.update(report.frames, report.fps, final=True)
    print(report.format())
    if args.report is not None:
        print(f"wrote {report.save(args.report)}")
    for sink in sinks:
        path = getattr(sink, "path", None) or getattr(sink, "folder", None)
        if path is not None:
            print(f"wrote {path}")
    if stopped_by:
        name = signal.Signals(stopped_by[0]).name
        print(f"stopped by {name}; outputs finalised", file=sys.stderr)
        return 128 + stopped_by[0]
    return 0


COMMAND = Command(
    name="run",
    alias="fornet-run",
    summary="segment a video, camera, stream or image folder; write overlays, labels, records",
    description="Segment every frame of INPUT (video file, images, V4L2/CSI camera, RTSP/HTTP stream or a "
                "GStreamer pipeline) with an exported FoR-Net and write OUTPUT (an H.264 video, an image "
                "folder, an RTSP server or a window). Decoding, segmentation and encoding overlap; live "
                "inputs keep the newest frame and reconnect after a gap; per-stage times, FPS and frame age "
                "are printed at the end.",
    add_arguments=add_arguments,
    run=run,
    epilog=EPILOG,
)

main = COMMAND.alias_main


if __name__ == "__main__":
    raise SystemExit(main())
