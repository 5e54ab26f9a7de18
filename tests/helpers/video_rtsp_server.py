"""A loopback RTSP test server, run as a separate process by /usr/bin/python3 (python3-gi).

    /usr/bin/python3 tests/helpers/video_rtsp_server.py --port 0 [--size 128x256] [--fps 30]

Serves an endless live test pattern ("a camera", H.264) at rtsp://127.0.0.1:PORT/cam and prints
``PORT <n>`` on stdout once it listens. Exits on SIGTERM/SIGINT. Used by tests/test_video_rtsp.py,
which kills, restarts and freezes it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--size", default="128x256")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={args.fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )")
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("ERROR cannot bind", flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"PORT {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
