"""A loopback RTSP test server: GStreamer's RTSP server serving a live H.264 test pattern.

Runs under Debian's /usr/bin/python3 (python3-gi + gir1.2-gst-rtsp-server-1.0), not the project
venv. Prints ``READY rtsp://127.0.0.1:<port>/<path>`` on stdout once it listens; exits on SIGTERM
or when its parent process goes away. Tests drive it via tests/fixtures_rtsp.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def pipeline(width: int, height: int, fps: int, pattern: str) -> str:
    # one keyframe a second so a client joining (or rejoining) decodes within a second;
    # config-interval=-1 repeats SPS/PPS with every keyframe for the same reason
    return (
        f"( videotestsrc is-live=true pattern={pattern} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=2000 "
        f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/stream")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--pattern", default="ball", help="videotestsrc pattern (ball moves, snow is noise)")
    args = ap.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args.width, args.height, args.fps, args.pattern))
    factory.set_shared(True)  # every client (and every reconnect) joins the same live encoder
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{args.port}", flush=True)
        return 1

    loop = GLib.MainLoop()
    parent = os.getppid()

    def watch_parent() -> bool:
        if os.getppid() != parent:  # orphaned: the test run died without stopping us
            loop.quit()
            return False
        return True

    GLib.timeout_add(500, watch_parent)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
