"""The ``fornetseg`` element inside your own GStreamer application: the label map of every frame read back from
the buffer meta the element attaches, in an appsink callback.

    source .venv-gst/bin/activate
    export GST_PLUGIN_PATH=$(python -m fornet.runtime.video.gst_element)
    python examples/gst_fornetseg_meta.py --model fornet.onnx --source "filesrc location=street.mp4 ! decodebin"

Prints how many pixels of each class every frame has; ``--labels FILE.npy`` saves the label maps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
import numpy as np  # noqa: E402
from gi.repository import Gst  # noqa: E402

from fornet.runtime.video.gst_element.meta import labels_of  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the exported model (fornet.onnx, a .plan)")
    parser.add_argument("--source", required=True, help="a GStreamer source description")
    parser.add_argument("--labels", type=Path, help="save every frame's label map here (.npy)")
    args = parser.parse_args(argv)
    Gst.init(None)
    pipeline = Gst.parse_launch(f"{args.source} ! videoconvert ! fornetseg name=seg mode=labels ! "
                                "appsink name=frames emit-signals=true sync=false")
    pipeline.get_by_name("seg").set_property("model", args.model)  # a value, never pipeline text
    labels: list[np.ndarray] = []

    def on_sample(appsink: Gst.Element) -> Gst.FlowReturn:
        frame_labels = labels_of(appsink.emit("pull-sample").get_buffer())
        if frame_labels is None:
            return Gst.FlowReturn.ERROR
        labels.append(frame_labels)
        counts = np.bincount(frame_labels.ravel())
        print(f"frame {len(labels)}: " + ", ".join(f"{c}:{n}" for c, n in enumerate(counts) if n))
        return Gst.FlowReturn.OK

    pipeline.get_by_name("frames").connect("new-sample", on_sample)
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if message.type == Gst.MessageType.ERROR:
        print(f"error: {message.parse_error()[0].message}", file=sys.stderr)
        return 2
    if args.labels is not None:
        np.save(args.labels, np.stack(labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
