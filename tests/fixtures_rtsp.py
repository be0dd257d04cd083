"""RTSP test fixtures: a real GStreamer RTSP server on 127.0.0.1 that tests can kill, freeze and restart.

The server runs as a subprocess of Debian's /usr/bin/python3 (apt: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,ugly}). Without them RTSP tests are
skipped, or fail when PLATE_AGENT_REQUIRE_RTSP=1 (set in CI so a missing package cannot hide).
"""

from __future__ import annotations

import functools
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SYSTEM_PYTHON = os.environ.get("PLATE_AGENT_GST_PYTHON", "/usr/bin/python3")
SERVER = Path(__file__).with_name("rtsp_server.py")
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing = [e for e in ('videotestsrc', 'x264enc', 'rtph264pay') if Gst.ElementFactory.find(e) is None];"
    "print(' '.join(missing))"
)


@functools.cache
def rtsp_unavailable() -> str:
    """Why the test server cannot run here, or "" when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    try:
        out = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run {SYSTEM_PYTHON}: {err}"
    if out.returncode != 0:
        return "python3-gi / gir1.2-gst-rtsp-server-1.0 missing: " + out.stderr.strip().splitlines()[-1:][0]
    if out.stdout.strip():
        return f"GStreamer elements missing: {out.stdout.strip()}"
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """One test server process; ``url`` stays the same across restarts (same port and path)."""

    def __init__(self, width: int = 640, height: int = 360, fps: int = 15, pattern: str = "ball",
                 file: str | None = None, frame_log: str | None = None) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"
        self.args = ["--width", str(width), "--height", str(height), "--fps", str(fps), "--pattern", pattern]
        if file:  # an H.264 MP4 served once, as recorded (see rtsp_server.py)
            self.args += ["--file", str(file)]
        if frame_log:
            self.args += ["--frame-log", str(frame_log)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self._log = tempfile.NamedTemporaryFile(prefix="rtsp-server-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not running"
        return self.proc.pid

    def start(self, timeout_s: float = 15.0) -> RtspServer:
        """Start and wait for READY; retries while the port is still held by the previous process."""
        deadline = time.monotonic() + timeout_s
        while True:
            cmd = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *self.args]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log)
            line = self._first_line(deadline)
            if line.startswith("READY"):
                self.frozen = False
                return self
            self._reap()
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP test server did not start: {line!r}; log: {self.log_text()[-2000:]}")
            time.sleep(0.2)  # test fixture, not agent code

    def kill(self) -> None:
        """Terminate the server: clients see the connection drop."""
        self._reap()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is sent, so reads hang."""
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def restart(self) -> RtspServer:
        self._reap()
        return self.start()

    def close(self) -> None:
        self._reap()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def _first_line(self, deadline: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        return buf.decode(errors="replace").strip()

    def _reap(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.frozen:
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.frozen = False
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def require_rtsp() -> None:
    why = rtsp_unavailable()
    if why:
        if os.environ.get("PLATE_AGENT_REQUIRE_RTSP") == "1":
            pytest.fail(f"RTSP test server unavailable: {why}")
        pytest.skip(f"RTSP test server unavailable: {why}")


@pytest.fixture
def rtsp_server_factory() -> Iterator[Callable[..., RtspServer]]:
    """``make(width=, height=, fps=, pattern=)`` -> a started RtspServer, closed after the test."""
    require_rtsp()
    servers: list[RtspServer] = []

    def make(**kwargs: object) -> RtspServer:
        server = RtspServer(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def rtsp_server(rtsp_server_factory: Callable[..., RtspServer]) -> RtspServer:
    """A started 640x360 15 fps RTSP test server on 127.0.0.1."""
    return rtsp_server_factory()
