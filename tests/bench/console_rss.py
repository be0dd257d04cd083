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
import shutil
import sys
import threading
import time
import urllib.error
from pathlib import Path

from tests.bench.history_rss import PLATES, compare, get, peak_kb, played, running_agent, status
from tests.fixtures_mqtt import free_port

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


def _done(port: int) -> bool:
    return played(status(port))


def _poll_like_a_page(port: int, stop: threading.Event) -> None:
    n = 0
    while not stop.wait(1.0):
        for path in ["/api/cameras/gate/frame"] + (["/api/status", "/api/events?limit=10"] if n % 2 == 0 else []):
            try:
                get(port, path)
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
    with running_agent(cfg) as proc:
        how = "closed"
        deadline = time.monotonic() + 30
        while status(port) is None and time.monotonic() < deadline:
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
        return peak_kb(proc.pid), how


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plates", type=int, default=len(PLATES))
    ap.add_argument("--screenshots", type=Path, default=None, help="save the pages here (PNG)")
    args = ap.parse_args()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    results = compare(PLATES[: args.plates], lambda tmp, clip, url, console_open:
                      run(tmp, clip, url, console_open, args.screenshots))
    closed_kb, (open_kb, how) = results[False][0], results[True]
    print(f"peak RSS console closed: {closed_kb / 1024:.1f} MB; open ({how}): {open_kb / 1024:.1f} MB; "
          f"difference {(open_kb - closed_kb) / 1024:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
