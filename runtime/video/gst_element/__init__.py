"""``fornetseg``: FoR-Net segmentation as a GStreamer element (Python, through GStreamer's Python plugin loader).

GStreamer loads ``python/fornetseg.py`` from each folder on ``GST_PLUGIN_PATH``; this package's folder is
that folder (:data:`PLUGIN_PATH`; ``python -m fornet.runtime.video.gst_element`` prints it). The element
runs in the distribution's Python, where python3-gi and python3-gst-1.0 live, inside the environment
made by ``make gst-env`` (``setup/gst-env.sh``)::

    source .venv-gst/bin/activate
    export GST_PLUGIN_PATH=$(python -m fornet.runtime.video.gst_element)
    gst-launch-1.0 videotestsrc num-buffers=50 ! videoconvert ! fornetseg model=fornet.onnx ! videoconvert ! xvimagesink

Modules: :mod:`.element` (the element), :mod:`.meta` (the label map on each buffer), :mod:`.buffers`
(frames in and out of ``Gst.Buffer``, for applications too), :mod:`.frames` (raw frame layouts, numpy only).
docs/video.md has the properties, pads and recipes.
"""

from __future__ import annotations

from pathlib import Path

#: The folder to put on ``GST_PLUGIN_PATH``.
PLUGIN_PATH = Path(__file__).resolve().parent
