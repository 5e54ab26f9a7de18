"""Registers the ``fornetseg`` element; read by GStreamer's Python plugin loader (gstreamer1.0-python3-plugin-loader).

The loader runs this file in the Python it embeds: the environment of ``make gst-env``, found on PATH
(``source .venv-gst/bin/activate``). Outside it fornet-deploy does not import, and the element is left
out with a line saying so instead of a traceback.
"""

import sys

try:
    from gi.repository import Gst

    from fornet.runtime.video.gst_element.element import ELEMENT_NAME, FornetSeg
except ImportError as exc:
    sys.stderr.write(f"fornetseg: not registered: {exc} (in the Python at {sys.prefix}); create the element's "
                     "environment with `make gst-env` and activate it (source .venv-gst/bin/activate) before "
                     "starting GStreamer\n")
else:
    __gstelementfactory__ = (ELEMENT_NAME, Gst.Rank.NONE, FornetSeg)
