"""The console in a real browser (Debian's chromium driven by Playwright): cars pass through the real
pipeline (a drawn clip on a loop, motion, the bundled detector, the reader contract server); the
operator filters the events by plate, opens a crop, allows the plate in one click, sees the rules
page change, and the next pass of that car opens the gate (gpiozero's MockFactory pin). Bound off
loopback, the pages ask for the password before showing anything, and the session cookie stays out
of the page's reach.

Skipped without chromium or playwright; fails instead when PLATE_AGENT_REQUIRE_BROWSER=1 (CI).
Screenshots of each page go to $PLATE_AGENT_SCREENSHOTS when set (the bench output), else tmp_path.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent import config
from agent.tools.scene import SceneSpec, write_clip
from agent.service import Service
from tests.history.events import decision
from tests.web.client import Api, Client

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLATE = "GH34JKL"
LABEL = "<img src=x onerror=alert(1)>"  # outside text: must show as text, never as markup


def _browser_or_skip() -> Any:
    why = ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install playwright; never 'playwright install')"
    if not why and shutil.which(CHROMIUM) is None:
        why = "chromium is not installed (apt-get install chromium)"
    if why:
        if os.environ.get("PLATE_AGENT_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return sync_playwright


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last={last!r}")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PLATE_AGENT_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def agent(tmp_path: Path, pr_sdk_server: Any) -> Iterator[tuple[Service, Any, int]]:
    """The agent on a clip of one car that comes again every few seconds, no rule for it yet."""
    clip = tmp_path / "gate.mp4"
    write_clip(SceneSpec(plates=(PLATE,), lead_in_s=0.5, drive_in_s=1.0, stop_s=0.8, drive_out_s=0.5, gap_s=0.8,
                         clock_overlay=True, noise_sigma=2.0), clip)
    pr_sdk_server.default_text = PLATE
    rules = tmp_path / "rules.csv"
    rules.write_text("plate,label,list,valid_from,valid_until,schedule,cameras\n")
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": str(clip), "type": "file", "fps_max": 10.0, "loop": True,
                     "zones": [{"polygon": [[0.02, 0.02], [0.98, 0.02], [0.98, 0.98], [0.02, 0.98]]}]}],
        "reader": {"type": "sdk", "url": pr_sdk_server.url, "rate_per_s": 0.0},
        "rules": {"file": str(rules), "deny": [{"plate": "XX99XXX", "label": LABEL}]},
        "decision": {"pass_window_s": 1.5},
        "relay": {"type": "gpio", "pin": "17", "pulse_s": 0.3, "cooldown_s": 0.0},
        "storage": {"state_dir": str(tmp_path / "state")},
        "status": {"port": 0},
    })
    factory = MockFactory()
    service = Service(cfg, relay_kw={"pin_factory": factory})
    service.start()
    thread = threading.Thread(target=service.run, name="test-supervisor", daemon=True)
    thread.start()
    try:
        assert service.status.server is not None
        yield service, factory.pin(17), service.status.server.port
    finally:
        service.close()
        thread.join(5)


def _events(port: int, **query: str) -> list[dict[str, Any]]:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return Client(port).get(f"/api/events?{q}").json()["events"]  # type: ignore[no-any-return]


def test_allow_a_plate_from_its_event_and_the_next_pass_opens(agent: tuple[Service, Any, int], shots: Path):
    sync_playwright = _browser_or_skip()
    service, pin, port = agent
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: [e for e in _events(port, plate=PLATE) if e["action"] == "none" and e["crop"]], 20,
             "a pass of the car with no rule for it")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            failed: list[tuple[int, str, str]] = []  # answers >= 400 (a frame may be 503 before the first one)
            page.on("response", lambda r: failed.append((r.status, r.request.method, r.url.split("?")[0]))
                    if r.status >= 400 and not (r.status == 503 and "/frame" in r.url) else None)

            page.goto(base + "/")  # the console's home is the live page
            page.wait_for_function("() => { const i = document.querySelector('img.frame');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=10_000)
            assert page.locator("[data-camera=gate] dl.state").inner_text().startswith("connected")
            page.screenshot(path=str(shots / "live.png"))

            page.goto(base + "/console/events")
            page.fill("#f-plate", PLATE[:4].lower())  # contains, any case
            page.click("#apply")
            page.wait_for_url("**plate=" + PLATE[:4].lower() + "*")
            rows = page.locator("table.events tbody tr")
            rows.first.wait_for()
            plates = set(page.locator("table.events a.plate").all_inner_texts())
            assert plates == {PLATE}
            page.screenshot(path=str(shots / "events.png"))
            csv = page.get_attribute("#csv", "href")
            assert csv is not None and "plate=gh34" in csv
            assert Client(port).get(csv).body.decode().splitlines()[1].split(",")[2] == PLATE

            page.locator("table.events img.crop").first.click()  # the crop, large, with the event's details
            page.wait_for_function("() => { const i = document.querySelector('#viewer img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=5_000)
            page.screenshot(path=str(shots / "crop.png"))
            page.click("#allow-plate")
            page.wait_for_selector("#allow-result.ok")
            assert PLATE in page.inner_text("#allow-result")

            page.goto(base + "/console/rules")
            allow = page.locator("#rules-allow")
            allow.locator("tr[data-rule]").first.wait_for()
            assert PLATE in allow.inner_text()
            deny = page.locator("#rules-deny")
            assert LABEL in deny.inner_text() and deny.locator("img").count() == 0  # shown as text
            page.fill("#r-plate", "AB12CDE")
            page.fill("#r-schedule", "someday 25:00")  # refused, with the reason
            page.click("#r-save")
            page.wait_for_selector("#r-msg.error")
            assert "schedule" in page.inner_text("#r-msg")
            page.screenshot(path=str(shots / "rules.png"))

            # the next pass of the same car opens the gate
            opened = wait_for(lambda: [e for e in _events(port, plate=PLATE, action="open")], 15,
                              "the next pass to open the gate")
            assert opened[0]["rule"].startswith("allow")
            wait_for(lambda: True in [s.state for s in pin.states], 5, "the relay pulse")
            page.goto(base + "/console/events?plate=" + PLATE)  # the passes before the rule, and after
            page.locator("table.events span.open").first.wait_for()
            page.screenshot(path=str(shots / "events-allowed.png"))

            page.goto(base + "/console/plate?plate=" + PLATE)
            page.wait_for_selector("#plate")
            assert page.inner_text("#plate") == PLATE
            page.screenshot(path=str(shots / "plate.png"))

            page.goto(base + "/console/usage")
            page.wait_for_selector("#saved-gate rect")
            assert page.locator("#paid-chart rect").count() >= 1
            page.screenshot(path=str(shots / "usage.png"))
            assert not errors, errors
            assert failed == [(400, "POST", base + "/api/rules")], failed  # only the refused entry
        finally:
            browser.close()


def test_off_loopback_the_console_asks_for_the_password_first(tmp_path: Path, shots: Path):
    sync_playwright = _browser_or_skip()
    password = "correct horse battery staple"
    a = Api(tmp_path, bind="0.0.0.0", environ={"CONSOLE_PASSWORD": password})
    a.store.write([decision("AB123CD")])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 900, "height": 500})
                page.goto(f"http://127.0.0.1:{a.server.port}/console/events")
                page.fill("input[name=password]", "wrong")
                page.click("form button")
                page.wait_for_selector("#login-error:text('wrong password')")
                assert page.locator("table.events").count() == 0  # nothing shown before the login
                page.screenshot(path=str(shots / "login.png"))
                page.fill("input[name=password]", password)
                page.click("form button")
                page.wait_for_selector("table.events a.plate")
                assert page.inner_text("table.events a.plate") == "AB123CD"
                cookie = next(c for c in page.context.cookies() if c["name"] == "plate_agent_session")
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
                assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read it
            finally:
                browser.close()
    finally:
        a.close()
