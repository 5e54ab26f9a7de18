"""``fornet run`` (alias ``fornet-run``): segment a video, camera, stream or image folder.

In the manner of jetson-inference's ``segnet INPUT OUTPUT``; see docs/video.md.
"""

from __future__ import annotations

import argparse
import logging
import operator
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fornet.cli.command import Command
from fornet.errors import FornetError
from fornet.options import (
    OptionGroup,
    add_options,
    count_arg,
    device_arg,
    option,
    option_groups,
    options_from_args,
    positive_float_arg,
)

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


MODEL = OptionGroup("model")
RENDER_MODE = OptionGroup(exclusive=True)
RENDERING = OptionGroup("rendering")
OUTPUTS = OptionGroup("more outputs")
INPUTS = OptionGroup("inputs")
STOPPING = OptionGroup("stopping and progress")


@dataclass(frozen=True)
class RunOptions:
    """Everything ``fornet run`` takes besides INPUT and OUTPUT (each field declares its flag)."""

    model: Path = option(flag="--model", parse=Path, required=True, metavar="PATH", group=MODEL,
                         help="a TensorRT plan, an ONNX file (with its sidecar) or a checkpoint")
    add_input: tuple[str, ...] = option(flag="--add-input", action="append", default_factory=list, convert=tuple,
                                        metavar="URI", default_text="",
                                        help="another source, batched with INPUT into the same engine calls "
                                             "(repeatable)")
    backend: str = option("auto", flag="--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"),
                          default_text="from the extension", group=MODEL, help="inference backend")
    device: int | str = option(0, flag="--device", parse=device_arg, metavar="N|cpu", group=MODEL,
                               help="GPU index or cpu")
    threads: int | None = option(None, flag="--threads", parse=int, metavar="N", group=MODEL,
                                 help="CPU threads of ONNX Runtime / PyTorch")
    batch: int | None = option(None, flag="--batch", parse=int, metavar="N", group=MODEL,
                               default_text="the engine's batch, else one per source", help="frames per engine call")
    overlay: bool = option(False, flag="--overlay", group=RENDER_MODE,
                           help="blend the class colours over the frame (the default)")
    mask: bool = option(False, flag="--mask", group=RENDER_MODE, help="the class colours alone")
    alpha: float = option(0.5, flag="--alpha", parse=float, metavar="ALPHA", group=RENDERING,
                          help="overlay opacity, 0..1")
    fps: float | None = option(None, flag="--fps", parse=positive_float_arg, metavar="F", group=RENDERING,
                               default_text="the input's, else 25", help="frame rate written into video/RTSP outputs")
    labels: Path | None = option(None, flag="--labels", parse=Path, metavar="DIR", group=OUTPUTS,
                                 help="a label PNG per frame into DIR")
    label_encoding: str = option("trainid", flag="--label-encoding", choices=("trainid", "labelid"), group=OUTPUTS,
                                 help="label PNG values: Cityscapes trainIds (0..18, 255) or labelIds")
    jsonl: Path | None = option(None, flag="--jsonl", parse=Path, metavar="FILE", group=OUTPUTS,
                                help="one JSON record per frame (source, index, timestamps, stage times, class "
                                     "histogram)")
    report: Path | None = option(None, flag="--report", parse=Path, metavar="FILE", group=OUTPUTS,
                                 help="the timing summary as JSON at the end")
    input_backend: str = option("auto", flag="--input-backend", choices=("auto", "pyav", "opencv", "gstreamer"),
                                default_text="GStreamer for streams and cameras when python3-gi is reachable, "
                                             "else PyAV/OpenCV",
                                group=INPUTS, help="library that reads the inputs")
    buffer: int | None = option(None, flag="--buffer", parse=int, metavar="N", group=INPUTS,
                                default_text="1, the newest, for live inputs; 4 for files",
                                help="frames buffered per input")
    watchdog_s: float = option(5.0, flag="--watchdog-s", parse=positive_float_arg, metavar="S", group=INPUTS,
                               help="reconnect a live input after S seconds without a frame")
    max_reconnects: int | None = option(None, flag="--max-reconnects", parse=count_arg, metavar="N", group=INPUTS,
                                        default_text="never",
                                        help="give up after N failed reconnection attempts in a row")
    open_timeout_s: float = option(10.0, flag="--open-timeout-s", parse=positive_float_arg, metavar="S",
                                   group=INPUTS, help="a live input must deliver its first frame within S seconds")
    rtsp_host: str | None = option(None, flag="--rtsp-host", metavar="ADDRESS", group=OUTPUTS,
                                   default_text="127.0.0.1, this machine only",
                                   help="address of an rtsp:// output's server (0.0.0.0: every interface)")
    rtsp_user: str | None = option(None, flag="--rtsp-user", metavar="USER", group=OUTPUTS,
                                   default_text="$FORNET_RTSP_USER, else no login",
                                   help="clients of an rtsp:// output must log in as USER (password: "
                                        "$FORNET_RTSP_PASSWORD or --rtsp-password-file)")
    rtsp_password_file: Path | None = option(None, flag="--rtsp-password-file", parse=Path, metavar="FILE",
                                             group=OUTPUTS, help="file holding the --rtsp-user password")
    max_frames: int | None = option(None, flag="--max-frames", parse=count_arg, metavar="N", group=STOPPING,
                                    help="stop after N segmented frames")
    duration_s: float | None = option(None, flag="--duration-s", parse=positive_float_arg, metavar="S",
                                      group=STOPPING, help="stop after S seconds")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, group=STOPPING, help="no progress line")

    @property
    def render(self) -> str:
        """``"mask"`` with ``--mask``, else ``"overlay"``."""
        return "mask" if self.mask else "overlay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """INPUT, OUTPUT and every :class:`RunOptions` flag."""
    parser.add_argument("input", metavar="INPUT", help="video, image(s), camera or stream (see below)")
    parser.add_argument("output", metavar="OUTPUT", nargs="?",
                        help="video file, image folder, rtsp://@:PORT/path or display://0 (optional)")
    add_options(parser, RunOptions, option_groups(parser, MODEL, RENDER_MODE, RENDERING, OUTPUTS, INPUTS, STOPPING))


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
    from fornet.runtime.video import JsonLinesSink, LabelPngSink, RtspAccess, VideoPipeline, VideoSource, open_sink

    opts = options_from_args(RunOptions, args)
    if not 0 <= opts.alpha <= 1:
        raise RunError(f"--alpha must be between 0 and 1, got {opts.alpha}")
    if args.output is None and not (opts.labels or opts.jsonl or opts.report):
        print("note: no OUTPUT, --labels or --jsonl given: frames are segmented and timed only", file=sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    uris = [args.input, *opts.add_input]
    sources: list[VideoSource] = []
    sinks = []
    try:
        for index, uri in enumerate(uris):
            sources.append(VideoSource(uri, index, backend=opts.input_backend, buffer=opts.buffer,
                                       watchdog_s=opts.watchdog_s, max_reconnects=opts.max_reconnects,
                                       open_timeout_s=opts.open_timeout_s))
        fps = opts.fps or sources[0].fps or 25.0
        if args.output is not None:
            rtsp = RtspAccess(opts.rtsp_host, opts.rtsp_user, opts.rtsp_password_file)
            sinks += [open_sink(_sink_uri(args.output, s.source_id, len(sources)), fps, s.source_id, rtsp)
                      for s in sources]
        if opts.labels is not None:
            sinks.append(LabelPngSink(opts.labels, opts.label_encoding))
        segmenter = Segmenter(opts.model, opts.backend, opts.device, threads=opts.threads)
    except BaseException:
        for source in sources:
            source.close()
        raise
    with segmenter:
        if opts.jsonl is not None:
            sinks.append(JsonLinesSink(opts.jsonl, {s.source_id: s.name for s in sources}, segmenter.io.num_classes))
        render = opts.render
        if args.output is None:
            render = "none"
        pipeline = VideoPipeline(segmenter, sources, sinks, render=render, alpha=opts.alpha, batch=opts.batch,
                                 max_frames=opts.max_frames, duration_s=opts.duration_s)
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
        progress = _Progress(total, opts.progress and sys.stderr.isatty())
        try:
            for _ in pipeline:
                progress.update(pipeline.stats.frames, pipeline.stats.fps())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        report = pipeline.report()
        progress.update(report.frames, report.fps, final=True)
    print(report.format())
    if opts.report is not None:
        print(f"wrote {report.save(opts.report)}")
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
