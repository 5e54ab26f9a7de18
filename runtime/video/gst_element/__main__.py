"""Print the folder to put on ``GST_PLUGIN_PATH`` for the ``fornetseg`` element."""

from fornet.runtime.video.gst_element import PLUGIN_PATH

print(PLUGIN_PATH)
