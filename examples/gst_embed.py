"""Segmentation inside your own GStreamer application, with ``Segmenter`` called from an appsink callback or a
pad probe, and the overlaid frames pushed back into GStreamer through an appsrc (encoded to MP4).

    source .venv-gst/bin/activate            # make gst-env: Debian's Python with its GStreamer + fornet
    python examples/gst_embed.py --model fornet.onnx --hook appsink \\
        --source "filesrc location=street.mp4 ! decodebin" --output street_segmented.mp4

``--source`` is any GStreamer source description (a camera: ``v4l2src``, ``rtspsrc location=... ! decodebin``,
on Jetson ``nvarguscamerasrc ! nvvidconv``); the frames reach Python as BGR. ``--labels FILE.npy`` also saves
every frame's label map. docs/video.md walks through it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
import numpy as np  # noqa: E402
from gi.repository import Gst, GstVideo  # noqa: E402

from fornet.errors import FornetError  # noqa: E402
from fornet.runtime import Segmenter  # noqa: E402
from fornet.runtime.video.gst_element.buffers import bgr_buffer, read_bgr  # noqa: E402

#: What the hook receives: packed BGR, the layout Segmenter takes.
BGR = "video/x-raw,format=BGR"


class Output:
    """Frames back into GStreamer: ``appsrc ! videoconvert ! x264enc ! mp4mux ! filesink``."""

    def __init__(self, path: Path, caps: Gst.Caps) -> None:
        self.pipeline = Gst.parse_launch("appsrc name=frames format=time ! videoconvert ! x264enc ! mp4mux ! "
                                         "filesink name=file")
        self.pipeline.get_by_name("file").set_property("location", str(path))  # a value, never pipeline text
        self.appsrc = self.pipeline.get_by_name("frames")
        self.appsrc.set_property("caps", caps)
        self.pipeline.set_state(Gst.State.PLAYING)

    def push(self, image: np.ndarray, like: Gst.Buffer) -> None:
        """Push ``image`` (BGR) with the timestamps of the frame it was made from."""
        buffer = bgr_buffer(image)
        buffer.pts, buffer.duration = like.pts, like.duration
        self.appsrc.emit("push-buffer", buffer)

    def close(self) -> None:
        """End the stream and wait for the file to be finished."""
        self.appsrc.emit("end-of-stream")
        wait(self.pipeline)


def wait(pipeline: Gst.Pipeline) -> None:
    """Run ``pipeline`` to its end; an error message raises."""
    message = pipeline.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if message.type == Gst.MessageType.ERROR:
        error, _ = message.parse_error()
        raise RuntimeError(f"{message.src.get_name()}: {error.message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the exported model (fornet.onnx, a .plan)")
    parser.add_argument("--source", required=True, help="a GStreamer source description")
    parser.add_argument("--hook", choices=("appsink", "probe"), default="appsink")
    parser.add_argument("--output", type=Path, required=True, help="the segmented video (MP4)")
    parser.add_argument("--labels", type=Path, help="save every frame's label map here (.npy)")
    parser.add_argument("--alpha", type=float, default=0.5)
    args = parser.parse_args(argv)
    Gst.init(None)
    try:
        segmenter = Segmenter(args.model)
    except FornetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    labels: list[np.ndarray] = []
    output: Output | None = None

    def segment(buffer: Gst.Buffer, caps: Gst.Caps) -> None:
        """Called on the streaming thread for each frame: one inference, the overlay back out."""
        nonlocal output
        frame = read_bgr(buffer, GstVideo.VideoInfo.new_from_caps(caps))
        result = segmenter.segment(frame, overlay_alpha=args.alpha)
        labels.append(result.labels)
        if output is None:
            output = Output(args.output, caps)
        output.push(result.overlay, buffer)

    # [appsink]
    def on_sample(appsink: Gst.Element) -> Gst.FlowReturn:
        sample = appsink.emit("pull-sample")
        segment(sample.get_buffer(), sample.get_caps())
        return Gst.FlowReturn.OK

    # [probe]
    def on_buffer(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        segment(info.get_buffer(), pad.get_current_caps())
        return Gst.PadProbeReturn.OK  # the buffer goes on downstream untouched

    # [pipelines]
    if args.hook == "appsink":
        pipeline = Gst.parse_launch(f"{args.source} ! videoconvert ! {BGR} ! "
                                    "appsink name=frames emit-signals=true sync=false")
        pipeline.get_by_name("frames").connect("new-sample", on_sample)
    else:
        pipeline = Gst.parse_launch(f"{args.source} ! videoconvert ! {BGR} ! identity name=frames ! fakesink")
        pipeline.get_by_name("frames").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer)
    # [end]
    pipeline.set_state(Gst.State.PLAYING)
    try:
        wait(pipeline)
        if output is not None:
            output.close()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        segmenter.close()
    if args.labels is not None:
        np.save(args.labels, np.stack(labels))
    print(f"{len(labels)} frames segmented -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
