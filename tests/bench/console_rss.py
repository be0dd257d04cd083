"""Peak RSS of the agent with the web console open against closed: the same drawn clip through
``tests.bench.agent_proc`` (the real pipeline, the SDK contract server, history and API on in both
runs), read from /proc/<pid>/status VmHWM once every frame was handled.

    .venv/bin/python -m tests.bench.console_rss [--plates N] [--screenshots DIR]

"open": headless chromium (Debian's, through Playwright) shows the Live page the whole run, which
asks for the camera's frame every second and for status and events every two; then the Events,
Rules and Usage pages once each. Without chromium or Playwright, a client asks for the same URLs at
the same pace. "closed": nothing asks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

from agent.tools.scene import write_clip
from tests.bench.history_rss import PLATES, _get, _peak_kb
from tests.fixtures_mqtt import free_port
from tests.prserver import PRServer
from tests.test_service import short_scene

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _config(tmp: Path, clip: Path, reader_url: str, port: int, name: str) -> Path:
    cfg = tmp / f"agent-{name}.toml"
    rules = tmp / f"rules-{name}.csv"
    rules.write_text("plate,label,list\nAB12CDE,Alice,allow\n")
    cfg.write_text(f"""
log_level = "warning"
[[cameras]]
id = "gate"
source = "{clip}"
type = "file"
fps_max = 15.0
zones = [{{ polygon = [[0.05, 0.3], [0.95, 0.3], [0.95, 0.95], [0.05, 0.95]] }}]
[reader]
type = "sdk"
url = "{reader_url}"
rate_per_s = 0.0
[decision]
pass_window_s = 2.0
[rules]
file = "{rules}"
[storage]
state_dir = "{tmp / ('state-' + name)}"
[status]
port = {port}
""")
    return cfg


def _status(port: int) -> dict | None:  # type: ignore[type-arg]
    try:
        return json.loads(_get(port, "/status"))  # type: ignore[no-any-return]
    except urllib.error.HTTPError as err:  # 503 while not yet healthy: the same document
        return json.loads(err.read())  # type: ignore[no-any-return]
    except OSError:
        return None  # not listening yet


def _done(port: int) -> bool:
    doc = _status(port)
    return doc is not None and doc["cameras"]["gate"]["ended"] and doc["reader"]["queued"] == 0


def _poll_like_a_page(port: int, stop: threading.Event) -> None:
    n = 0
    while not stop.wait(1.0):
        for path in ["/api/cameras/gate/frame"] + (["/api/status", "/api/events?limit=10"] if n % 2 == 0 else []):
            try:
                _get(port, path)
            except (OSError, urllib.error.HTTPError):
                pass
        n += 1


def _browse(port: int, shots: Path | None) -> None:
    """The Live page until the clip has played, then each other page once."""
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(base + "/console/live")
            shot_taken = False
            while not _done(port):
                time.sleep(1.0)
                if shots and not shot_taken and page.locator("table.events a.plate").count() >= 2:
                    page.screenshot(path=str(shots / "console-live.png"))
                    shot_taken = True
            for name in ("events", "rules", "usage"):
                page.goto(f"{base}/console/{name}")
                page.wait_for_load_state("networkidle")
                if shots:
                    page.screenshot(path=str(shots / f"console-{name}.png"))
        finally:
            browser.close()


def run(tmp: Path, clip: Path, reader_url: str, console_open: bool, shots: Path | None) -> tuple[int, str]:
    """(peak RSS in kB, how the console was open) for one run."""
    port = free_port()
    name = "open" if console_open else "closed"
    cfg = _config(tmp, clip, reader_url, port, name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.agent_proc", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL)
    how = "closed"
    try:
        deadline = time.monotonic() + 30
        while _status(port) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if console_open:
            try:
                import playwright  # noqa: F401

                browser = shutil.which(CHROMIUM) is not None
            except ImportError:
                browser = False
            if browser:
                how = "chromium on the Live page"
                _browse(port, shots)
            else:
                how = "a client asking what the Live page asks"
                stop = threading.Event()
                poller = threading.Thread(target=_poll_like_a_page, args=(port, stop), daemon=True)
                poller.start()
                while not _done(port):
                    time.sleep(0.5)
                stop.set()
                poller.join()
        else:
            while not _done(port):
                time.sleep(0.5)
        time.sleep(3.0)  # the last pass ends and is stored
        return _peak_kb(proc.pid), how
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plates", type=int, default=len(PLATES))
    ap.add_argument("--screenshots", type=Path, default=None, help="save the pages here (PNG)")
    args = ap.parse_args()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = tmp / "gate.mp4"
        plates = PLATES[: args.plates]
        write_clip(short_scene(plates), clip)
        results = {}
        for console_open in (False, True):
            server = PRServer(token=None).start()
            server.texts.extend(p.replace(" ", "") for p in plates)
            try:
                results[console_open] = run(tmp, clip, server.url, console_open, args.screenshots)
            finally:
                server.close()
        closed_kb, (open_kb, how) = results[False][0], results[True]
        print(f"peak RSS console closed: {closed_kb / 1024:.1f} MB; open ({how}): {open_kb / 1024:.1f} MB; "
              f"difference {(open_kb - closed_kb) / 1024:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
