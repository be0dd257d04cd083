"""Peak RSS of the agent with the event store and the API in use, against the agent without them:
the same drawn clip through ``tests.bench.agent_proc`` (the real pipeline, the SDK contract server),
read from /proc/<pid>/status VmHWM once every frame was handled.

    .venv/bin/python -m tests.bench.history_rss [--plates N]

"on": [history] and [console] enabled, and a client polling the API twice a second the whole run
(the events page, a crop, usage, status), as an open console would. "off": both disabled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from agent.tools.scene import write_clip
from tests.fixtures_mqtt import free_port
from tests.prserver import PRServer
from tests.test_service import short_scene

T = TypeVar("T")

PLATES = ("AB12 CDE", "XX99 XXX", "KX52 ODV", "LM07 PQR", "GH18 JKL", "AB12 CDF")


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:  # noqa: S310 (loopback)
        return bytes(r.read())


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def status(port: int) -> dict[str, Any] | None:
    """The /status document; None while the agent is not listening yet."""
    try:
        return json.loads(get(port, "/status"))  # type: ignore[no-any-return]
    except urllib.error.HTTPError as err:  # 503 while not yet healthy: the same document
        return json.loads(err.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def played(doc: dict[str, Any] | None) -> bool:
    """The clip has ended and every crop has been read."""
    return doc is not None and doc["cameras"]["gate"]["ended"] and doc["reader"]["queued"] == 0


@contextmanager
def running_agent(cfg: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The agent on ``cfg`` in a child process, stopped with SIGTERM on the way out."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.agent_proc", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def compare(plates: Sequence[str], run_one: Callable[[Path, Path, str, bool], T]) -> dict[bool, T]:
    """``run_one(tmp, clip, reader_url, variant)`` for variant False then True, on one drawn clip of
    ``plates``, each against a fresh SDK contract server that reads them in turn."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = tmp / "gate.mp4"
        write_clip(short_scene(tuple(plates)), clip)
        results = {}
        for variant in (False, True):
            server = PRServer(token=None).start()
            server.texts.extend(p.replace(" ", "") for p in plates)
            try:
                results[variant] = run_one(tmp, clip, server.url, variant)
            finally:
                server.close()
        return results


def run(tmp: Path, clip: Path, reader_url: str, on: bool) -> tuple[int, int]:
    """(peak RSS in kB, events stored) for one run."""
    port = free_port()
    state = tmp / ("state-on" if on else "state-off")
    cfg = tmp / f"agent-{'on' if on else 'off'}.toml"
    cfg.write_text(f"""
log_level = "warning"
[[cameras]]
id = "gate"
source = "{clip}"
type = "file"
fps_max = 15.0
[reader]
type = "sdk"
url = "{reader_url}"
rate_per_s = 0.0
[decision]
pass_window_s = 2.0
[storage]
state_dir = "{state}"
[status]
port = {port}
[history]
enabled = {str(on).lower()}
[console]
enabled = {str(on).lower()}
""")
    with running_agent(cfg) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            doc = status(port)
            if doc is None:
                continue  # not listening yet
            if on:  # the console is open
                events = json.loads(get(port, "/api/events?limit=50"))["events"]
                for e in events[:5]:
                    if e["crop"]:
                        get(port, e["crop"])
                get(port, "/api/usage")
                get(port, "/api/status")
            if played(doc):
                break
        time.sleep(3.0)  # the last pass ends and is stored
        stored = len(json.loads(get(port, "/api/events?limit=100"))["events"]) if on else 0
        return peak_kb(proc.pid), stored


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plates", type=int, default=len(PLATES))
    args = ap.parse_args()
    results = compare(PLATES[: args.plates], run)
    off_kb, (on_kb, stored) = results[False][0], results[True]
    print(f"peak RSS off: {off_kb / 1024:.1f} MB; on (store + API polled): {on_kb / 1024:.1f} MB; "
          f"difference {(on_kb - off_kb) / 1024:+.1f} MB; events stored {stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
