"""``run_video``: one segmentation run from inputs to outputs, as ``fornet run`` does it.

    from fornet.runtime import ModelSpec
    from fornet.runtime.video.run import RunOptions, run_video

    result = run_video("drive.mp4", "overlay.mp4", ModelSpec("export/fornet.onnx", device="cpu"),
                       RunOptions(jsonl=Path("frames.jsonl")))
    print(result.report.format())

It opens the inputs (:class:`~fornet.runtime.video.sources.VideoSource`), the outputs (one video
file, RTSP mount or window per input, plus label PNGs and per-frame records) and the model, runs a
:class:`~fornet.runtime.video.pipeline.VideoPipeline` until the inputs end, a limit is reached or
SIGINT/SIGTERM arrive (the outputs are finalised either way; SIGUSR1 prints the timing so far), and
returns the run's report (with the model, backend, device, command and library versions) and the
files it wrote. Every output path is checked before any input or the model is opened.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fornet.atomic import check_output_dir, check_output_file
from fornet.errors import FornetError
from fornet.options import (
    STDOUT,
    OptionGroup,
    alpha_arg,
    count_arg,
    json_option,
    option,
    positive_float_arg,
    positive_int_arg,
    seconds_arg,
)
from fornet.redact import mask_credentials
from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.video.encode import ENCODER_CHOICES
from fornet.runtime.video.errors import SourceError
from fornet.runtime.video.pipeline import Render, VideoPipeline
from fornet.runtime.video.readers import BACKENDS
from fornet.runtime.video.rtsp_access import RtspAccess
from fornet.runtime.video.sinks import JsonLinesSink, LabelPngSink, Sink, open_sink
from fornet.runtime.video.sources import INPUT_KINDS, VideoSource
from fornet.runtime.video.stats import PipelineReport, RunInfo
from fornet.runtime.video.uri import parse_sink
from fornet.versions import package_versions

RENDER_MODE = OptionGroup(exclusive=True)
RENDERING = OptionGroup("rendering")
OUTPUTS = OptionGroup("more outputs")
INPUTS = OptionGroup("inputs")
STOPPING = OptionGroup("stopping and progress")

#: ``progress(frames, total, fps)``: called after every frame (``total``: the input's frame count, if known).
Progress = Callable[[int, int | None, float], None]


@dataclass(frozen=True)
class RunOptions:
    """Everything ``fornet run`` takes besides INPUT, OUTPUT and the model (each field declares its flag)."""

    add_input: tuple[str, ...] = option(flag="--add-input", action="append", default_factory=list, convert=tuple,
                                        metavar="URI", default_text="",
                                        help="another source, batched with INPUT into the same engine calls "
                                             "(repeatable)")
    overlay: bool = option(False, flag="--overlay", group=RENDER_MODE,
                           help="blend the class colours over the frame (the default)")
    mask: bool = option(False, flag="--mask", group=RENDER_MODE, help="the class colours alone")
    alpha: float = option(0.5, flag="--alpha", parse=alpha_arg, metavar="ALPHA", group=RENDERING,
                          help="opacity of the class colours in the overlay, 0..1")
    fps: float | None = option(None, flag="--fps", parse=positive_float_arg, metavar="F", group=RENDERING,
                               default_text="the input's, else 25", help="frame rate written into video/RTSP outputs")
    labels: Path | None = option(None, flag="--labels", parse=Path, metavar="DIR", group=OUTPUTS,
                                 help="a label PNG per frame into DIR")
    encoder: str = option("auto", flag="--encoder", choices=ENCODER_CHOICES, group=OUTPUTS,
                          default_text="auto: NVENC where the GPU has a video encoder (files: FFmpeg's h264_nvenc; "
                                       "RTSP: Jetson's nvv4l2h264enc), else x264",
                          help="H.264 encoder of the video or RTSP output; the report names the one that ran")
    label_encoding: str = option("trainid", flag="--label-encoding", choices=("trainid", "labelid"), group=OUTPUTS,
                                 help="label PNG values: Cityscapes trainIds (0..18, 255) or labelIds")
    jsonl: Path | None = option(None, flag="--jsonl", parse=Path, metavar="FILE", group=OUTPUTS,
                                help="one JSON record per frame (source, index, timestamps, stage times, class "
                                     "histogram)")
    overwrite: bool = option(False, flag="--overwrite", group=OUTPUTS,
                             help="replace the label PNGs an earlier run left in --labels DIR (without it such a "
                                  "folder is refused: the two runs' labels would mix)")
    json: Path | None = json_option("the run's report (model, FPS, stage times, frame age, sources, encoders, "
                                    "versions)", OUTPUTS)
    input_backend: str = option("auto", flag="--input-backend", choices=BACKENDS,
                                default_text="NVDEC for video files and rtsp:// where PyNvVideoCodec and a GPU "
                                             "are, else GStreamer for streams and cameras when python3-gi is "
                                             "reachable, else PyAV/OpenCV (nvdec reads files and rtsp/http "
                                             "streams)",
                                group=INPUTS, help="library that reads the inputs")
    input_kind: str = option("auto", flag="--input-kind", choices=INPUT_KINDS, group=INPUTS,
                             default_text="live for cameras, streams and gst:// pipelines; file for files and "
                                          "gst:// pipelines with filesrc or num-buffers",
                             help="file: every frame, to the input's end (exit 0); live: the newest frame, "
                                  "reconnect after a gap")
    buffer: int | None = option(None, flag="--buffer", parse=positive_int_arg, metavar="N", group=INPUTS,
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
    duration_s: float | None = option(None, flag="--duration-s", parse=seconds_arg, metavar="S",
                                      group=STOPPING, help="stop after S seconds")
    progress: bool = option(True, flag="--quiet", convert=operator.not_, group=STOPPING, help="no progress line")

    @property
    def render(self) -> Render:
        """``"mask"`` with ``--mask``, else ``"overlay"``."""
        return "mask" if self.mask else "overlay"


@dataclass(frozen=True)
class RunResult:
    """What a run did: its report, the files and folders it wrote, the signal that stopped it (if any), and
    the error that ended it once frames were flowing (a live input given up on, a corrupt frame in a file;
    the outputs are finalised and the report covers the run up to it)."""

    report: PipelineReport
    written: tuple[Path, ...]
    stopped_by: signal.Signals | None
    error: FornetError | None = None


def sink_uri(uri: str, source_id: int, count: int) -> str:
    """With several sources each gets its own video file, RTSP mount or window: ``name-<id>``."""
    spec = parse_sink(uri)
    if count == 1 or spec.kind == "images":
        return uri
    if spec.kind == "video":
        path = Path(spec.location)
        return str(path.with_name(f"{path.stem}-{source_id}{path.suffix}"))
    if spec.kind == "rtsp":
        return f"{uri.rstrip('/')}-{source_id}"
    return f"display://{source_id}"


def check_outputs(output_uri: str | None, options: RunOptions) -> None:
    """Check every output path before any work: a folder where a file goes (or the reverse), an unwritable place.

    Raises:
        FornetError: naming the flag and the fix.
    """
    if output_uri is not None:
        spec = parse_sink(output_uri)
        if spec.kind == "video":
            check_output_file(spec.location, "OUTPUT")
        elif spec.kind == "images":
            check_output_dir(spec.location, "OUTPUT")
    if options.labels is not None:
        check_output_dir(options.labels, "--labels")
    if options.jsonl is not None:
        check_output_file(options.jsonl, "--jsonl")
    if options.json is not None and options.json != STDOUT:
        check_output_file(options.json, "--json")


def _check_distinct_names(sources: list[VideoSource]) -> None:
    """Image inputs name their outputs after their files: two inputs holding the same name would overwrite
    each other's label PNGs and images."""
    owners: dict[str, VideoSource] = {}
    for source in sources:
        for name in source.output_names:
            first = owners.setdefault(name, source)
            if first is not source:
                raise SourceError(f"{first.name} and {source.name} both hold an image named {name}: their outputs "
                                  "would overwrite each other; run them separately, or rename one of them")


def _written(sink: Sink) -> Path | None:
    """The file or folder ``sink`` wrote, if it exists (a sink that got no frame leaves nothing)."""
    path = getattr(sink, "path", None) or getattr(sink, "folder", None)
    return None if path is None or not Path(path).exists() else Path(path)


def _encoders(sinks: list[Sink]) -> dict[str, str]:
    """The encoder of each video or RTSP output, by its path or URL."""
    return {str(getattr(sink, "path", None) or getattr(sink, "url", "")): encoder for sink in sinks
            if (encoder := getattr(sink, "encoder", None)) is not None}


@contextmanager
def _stop_on_signals(pipeline: VideoPipeline, stopped_by: list[signal.Signals]) -> Iterator[None]:
    """SIGINT/SIGTERM stop the pipeline (a second one stops waiting); SIGUSR1 prints the timing so far.

    Handlers are only installed in the main thread (Python delivers signals there alone).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        if stopped_by:  # a second Ctrl-C: stop waiting
            raise KeyboardInterrupt
        stopped_by.append(signal.Signals(signum))
        pipeline.stop()

    def on_report(_signum: int, _frame: FrameType | None) -> None:
        print(pipeline.report().format(), file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_report)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_video(input_uri: str, output_uri: str | None, spec: ModelSpec, options: RunOptions,
              progress: Progress | None = None, command: str = "") -> RunResult:
    """Segment ``input_uri`` (and ``options.add_input``) into ``output_uri`` and the other outputs.

    Args:
        input_uri: the first input (file, folder, glob, camera, stream; see docs/video.md).
        output_uri: the video/RTSP/image-folder/window output, or None (labels, records or timing only).
        spec: the model.
        options: the run's options.
        progress: called after every frame with the frames so far, the input's frame count and the FPS.
        command: the command line, for the report (passwords in it are masked).

    Raises:
        FornetError: an input, output or model that cannot be opened (before any frame is read); an
            error after that is :attr:`RunResult.error`.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    check_outputs(output_uri, options)
    uris = [input_uri, *options.add_input]
    with ExitStack() as cleanup:
        sources = []
        for index, uri in enumerate(uris):
            source = VideoSource(uri, index, backend=options.input_backend, buffer=options.buffer,
                                 watchdog_s=options.watchdog_s, max_reconnects=options.max_reconnects,
                                 open_timeout_s=options.open_timeout_s, input_kind=options.input_kind,
                                 max_frames=options.max_frames)
            cleanup.callback(source.close)
            sources.append(source)
        _check_distinct_names(sources)
        fps = options.fps or sources[0].fps or 25.0
        sinks: list[Sink] = []
        try:
            if output_uri is not None:
                rtsp = RtspAccess(options.rtsp_host, options.rtsp_user, options.rtsp_password_file)
                sinks += [open_sink(sink_uri(output_uri, s.source_id, len(sources)), fps, s.source_id, rtsp, s.live,
                                    options.encoder) for s in sources]
            if options.labels is not None:
                sinks.append(LabelPngSink(options.labels, options.label_encoding, options.overwrite))
            segmenter = cleanup.enter_context(Segmenter(spec))
            if options.jsonl is not None:
                sinks.append(JsonLinesSink(options.jsonl, {s.source_id: s.name for s in sources},
                                           segmenter.io.num_classes))
        except BaseException:
            for sink in sinks:  # nothing was written: leave no partial files
                sink.abort()
            raise
        pipeline = VideoPipeline(segmenter, sources, sinks, render="none" if output_uri is None else options.render,
                                 alpha=options.alpha, batch=spec.batch, max_frames=options.max_frames,
                                 duration_s=options.duration_s)
        stopped_by: list[signal.Signals] = []
        total = sources[0].total_frames if len(sources) == 1 else None
        error: FornetError | None = None
        with _stop_on_signals(pipeline, stopped_by):
            try:
                for _ in pipeline:
                    if progress is not None:
                        progress(pipeline.stats.frames, total, pipeline.stats.fps())
            except FornetError as exc:  # the outputs are finalised: report the run up to the error
                error = exc
        info = RunInfo(str(spec.path), segmenter.backend_name, segmenter.backend.device, mask_credentials(command),
                       package_versions())
        report = dataclasses.replace(pipeline.report(), run=info, encoders=_encoders(sinks))
    written = [path for sink in sinks if (path := _written(sink)) is not None]
    return RunResult(report, tuple(written), stopped_by[0] if stopped_by else None, error)
