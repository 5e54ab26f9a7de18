"""``fornet run`` (alias ``fornet-run``): segment a video, camera, stream or image folder.

In the manner of jetson-inference's ``segnet INPUT OUTPUT``; the run itself is
:func:`fornet.runtime.video.run.run_video` (see docs/video.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from fornet.cli.command import Command
from fornet.cli.output import CommandOutput
from fornet.options import add_options, option_groups, options_from_args
from fornet.runtime.model_spec import MODEL, ModelSpec
from fornet.runtime.video.run import INPUTS, OUTPUTS, RENDER_MODE, RENDERING, STOPPING, RunOptions, run_video

EPILOG = """inputs:  video.mp4 | file:///path | frames/ | "shots/*.jpg" | v4l2:///dev/video0 | csi://0 |
         rtsp://user:pass@host:8554/path | http(s)://... | "gst://videotestsrc ! videoconvert ! appsink"
outputs: out.mp4 | out.mkv | folder/ | rtsp://@:8554/out | display://0

examples:
  fornet run video.mp4 overlay.mp4 --model export/fornet.onnx
  fornet run rtsp://cam/live rtsp://@:8554/seg --model export/fornet_fp16.plan --watchdog-s 3
  fornet run drive.mkv --model fornet.onnx --mask --labels labels/ --label-encoding labelid --jsonl frames.jsonl
  fornet run rtsp://cam1/live cams.mp4 --add-input rtsp://cam2/live --model fornet.plan --json report.json
  fornet run drive.mp4 out.mp4 --model run/best.pth --input-size 512x1024 --device cuda:0
  fornet run "gst://filesrc location=clip.mp4 ! decodebin ! videoconvert ! appsink" out.mp4 --model fornet.onnx

Live inputs keep only the newest frame (drops are counted; --buffer N keeps N) and are written in
real time; files deliver every frame. A gst:// pipeline's appsink is asked for BGR frames; one with
filesrc or num-buffers is read as a file, to its end (--input-kind file|live overrides). Outputs are
checked before the work; a --labels folder of an earlier run needs --overwrite. SIGTERM or Ctrl-C
finishes cleanly (the video stays playable; frames read but not written are counted as discarded);
SIGUSR1 prints the timing so far.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """INPUT, OUTPUT, the model flags and every :class:`RunOptions` flag."""
    parser.add_argument("input", metavar="INPUT", help="video, image(s), camera or stream (see below)")
    parser.add_argument("output", metavar="OUTPUT", nargs="?",
                        help="video file, image folder, rtsp://@:PORT/path or display://0 (optional)")
    groups = option_groups(parser, MODEL, RENDER_MODE, RENDERING, OUTPUTS, INPUTS, STOPPING)
    add_options(parser, ModelSpec, groups)
    add_options(parser, RunOptions, groups)


class _ProgressLine:
    """A one-line progress report on stderr, at most once a second."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, frames: int, total: int | None, fps: float, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 1.0:
            return
        self._last = now
        of = f"/{total}" if total else ""
        print(f"\rframe {frames}{of}  {fps:.1f} FPS", end="\n" if final else "", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Segment INPUT into OUTPUT (and the other outputs); print the timing and what was written (also when an
    error ended the run: then the error follows, exit 2)."""
    options = options_from_args(RunOptions, args)
    output = CommandOutput(options.json)
    if args.output is None and not (options.labels or options.jsonl or options.json):
        print("note: no OUTPUT, --labels or --jsonl given: frames are segmented and timed only", file=sys.stderr)
    progress = _ProgressLine() if options.progress and sys.stderr.isatty() else None
    result = run_video(args.input, args.output, options_from_args(ModelSpec, args), options, progress,
                       command=shlex.join(["fornet", "run", *argv]))
    if progress is not None:
        progress(result.report.frames, None, result.report.fps, final=True)
    output.say(result.report.format())
    output.record(result.report)
    for path in result.written:
        output.say(f"wrote {path}")
    if result.error is not None:  # after the report: what the run did up to the error
        raise result.error
    if result.stopped_by is not None:
        print(f"stopped by {result.stopped_by.name}; outputs finalised", file=sys.stderr)
        return 128 + result.stopped_by.value
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
