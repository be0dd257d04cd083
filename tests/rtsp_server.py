"""A loopback RTSP test server: GStreamer's RTSP server serving a live H.264 test pattern, or an
H.264 file (``--file``, sent as recorded, paced in real time, once) for the benchmarks.

Runs under Debian's /usr/bin/python3 (python3-gi + gir1.2-gst-rtsp-server-1.0), not the project
venv. Prints ``READY rtsp://127.0.0.1:<port>/<path>`` on stdout once it listens; exits on SIGTERM
or when its parent process goes away. Tests drive it via tests/fixtures_rtsp.py.

``--frame-log FILE`` appends ``<frame index> <wall time>`` for every frame as it is handed to the
RTP payloader (after real-time pacing), and ``EOS <wall time>`` at the end of a file: the benchmarks
map the scene's frame indices to the wall time each frame was sent.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

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


def file_pipeline(path: str) -> str:
    # no re-encoding: the clip is already H.264 (1 keyframe/s); identity sync=true releases each
    # frame at its time, so the frame log stamps when it is sent, not when it was read from disk
    return (
        f"( filesrc location={path} ! qtdemux ! h264parse config-interval=-1 "
        f"! identity sync=true ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def log_frames(factory: Any, path: str, fps: int, on_eos: Any) -> None:
    """Stamp every frame entering the payloader (index from its timestamp) into ``path``."""
    out = open(path, "a", buffering=1)  # noqa: SIM115  (open for the life of the process)
    frame_ns = Gst.SECOND / fps

    def probe(_pad: Any, info: Any) -> Any:
        now = time.time()
        if info.type & Gst.PadProbeType.BUFFER:
            pts = info.get_buffer().pts
            if pts != Gst.CLOCK_TIME_NONE:
                out.write(f"{round(pts / frame_ns)} {now:.6f}\n")
        elif info.get_event().type == Gst.EventType.EOS:
            out.write(f"EOS {now:.6f}\n")
            GLib.idle_add(on_eos)
        return Gst.PadProbeReturn.OK

    def configure(_factory: Any, media: Any) -> None:
        pad = media.get_element().get_by_name("pay0").get_static_pad("sink")
        pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM, probe)

    factory.connect("media-configure", configure)


def no_rewind(media: Any) -> None:
    """FFmpeg asks for ``Range: npt=0.000-`` on PLAY; on a shared file media the server would seek
    back for every client that joins. The file answers "not seekable": everyone joins where it is."""

    def probe(_pad: Any, info: Any) -> Any:
        # answered as it came: a fresh seeking query says "not seekable"
        if info.get_query().type == Gst.QueryType.SEEKING:
            return Gst.PadProbeReturn.HANDLED
        return Gst.PadProbeReturn.OK

    pad = media.get_element().get_by_name("pay0").get_static_pad("sink")
    pad.add_probe(Gst.PadProbeType.QUERY_UPSTREAM, probe)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/stream")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--pattern", default="ball", help="videotestsrc pattern (ball moves, snow is noise)")
    ap.add_argument("--file", help="serve this H.264 MP4 once instead of the test pattern")
    ap.add_argument("--frame-log", help="append '<frame index> <wall time>' per frame sent to this file")
    args = ap.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    if args.file:
        factory.set_launch(file_pipeline(os.path.abspath(args.file)))
    else:
        factory.set_launch(pipeline(args.width, args.height, args.fps, args.pattern))
    mounts = server.get_mount_points()

    def played_out() -> bool:  # a file is served once: a client reconnecting after it gets 404
        if args.file and mounts.match(args.path)[0] is not None:
            mounts.remove_factory(args.path)
        return False

    if args.frame_log:
        log_frames(factory, args.frame_log, args.fps, played_out)
    if args.file:
        factory.connect("media-configure", lambda _f, media: no_rewind(media))
    factory.set_shared(True)  # every client (and every reconnect) joins the same live encoder
    mounts.add_factory(args.path, factory)
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
