"""The console's server side: pages and assets (bundled, no inline script, the security headers),
each camera's live frame (kept and encoded only while a page looks, one encode per interval however
many ask, zones and detections drawn), the CSV export (every match, formulas quoted), and access
(pages open to all, data only with a login off loopback)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import Zone
from agent.types import Box, Frame
from agent.web import live as live_mod
from agent.web.api import PAGES
from agent.web.export import _cell
from agent.web.live import LiveFrames
from tests.clock import Clock
from tests.history.events import decision
from tests.web.client import Api, Client

PASSWORD = "correct horse battery staple"
ZONE = Zone(polygon=[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], kind="include")


def frame(seq: int, camera: str = "gate", w: int = 1280, h: int = 720) -> Frame:
    return Frame(camera, np.full((h, w, 3), 40, np.uint8), seq, 0.0, 0.0)


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_a_frame_is_kept_only_while_a_page_looks_and_encoded_once_per_interval():
    clock = Clock()
    live = LiveFrames({"gate": [ZONE]}, clock=clock)
    live.offer(frame(1), [])  # nobody looks: nothing kept
    assert live.jpeg("gate") is None and live.encodes == 0
    live.offer(frame(2), [Box(640, 360, 840, 420)])  # asked just now: kept from here on
    first = live.jpeg("gate")
    assert first is not None and live.encodes == 1
    for seq in range(3, 20):  # many pages, many frames, within one interval: one JPEG
        live.offer(frame(seq), [])
        assert live.jpeg("gate") == first
    assert live.encodes == 1
    clock.set(clock.t + live_mod.MIN_INTERVAL_S)
    assert live.jpeg("gate") is not None and live.encodes == 2  # frame 19 now
    with pytest.raises(KeyError):
        live.jpeg("side")
    clock.set(clock.t + live_mod.WATCH_S + 1)  # the page closed: the next frame lets the kept one go
    live.offer(frame(30), [])
    assert live.jpeg("gate") is None and live.encodes == 2


def test_the_frame_shows_the_zones_and_the_latest_detections_scaled_down():
    clock = Clock()
    live = LiveFrames({"gate": [ZONE]}, clock=clock)
    live.jpeg("gate")
    live.offer(frame(1), [Box(640, 360, 840, 420)])
    img = decode(live.jpeg("gate") or b"")
    assert img.shape[:2] == (360, live_mod.WIDTH_PX)
    near = lambda colour, y, x: np.abs(img[y - 1:y + 2, x - 1:x + 2].astype(int) - colour).sum(axis=2).min() < 90  # noqa: E731
    assert near(live_mod.ZONE_COLOURS["include"], 36, 320)  # the zone's top edge, 10 % down
    assert near(live_mod.DETECTION_COLOUR, 180, 360)  # the box's top edge, at half scale
    assert not near(live_mod.DETECTION_COLOUR, 300, 100)
    clock.set(clock.t + live_mod.DETECTIONS_S + 1)  # no detection since: the box is no longer drawn
    live.offer(frame(2), [])
    img = decode(live.jpeg("gate") or b"")
    assert not near(live_mod.DETECTION_COLOUR, 180, 360)


@pytest.fixture
def api(tmp_path: Path):
    a = Api(tmp_path, live=LiveFrames({"gate": [ZONE]}))
    yield a
    a.close()


def test_pages_and_their_assets_are_served_bundled_with_the_security_headers(api: Api):
    c = api.client
    home = c.get("/")
    assert home.status == 302 and home.headers["Location"] == "/console/live"
    for page in PAGES:
        r = c.get(f"/console/{page}")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'self': no inline script
        assert r.headers["X-Frame-Options"] == "DENY"
        html = r.body.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " on" not in html.replace("\n", " ").lower()
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert f"/static/{page}.js" in assets and "/static/api.js" in assets
        assert f"<title>{page.capitalize()} · plate-agent</title>" in html and "$" not in html
        for asset in assets:
            assert c.get(asset).status == 200, asset
        assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for bad in ("/console/nope", "/console/..%2Fapi", "/console/live.html", "/console/", "/static/page.html.in"):
        assert c.get(bad).status == 404, bad
    for js in ("console.js", "table.js", "live.js", "events.js", "plate.js", "rules.js", "usage.js"):
        text = c.get(f"/static/{js}").body.decode()
        assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|eval\(", text), js
        assert "http" not in text.replace("http://www.w3.org/2000/svg", ""), js


def test_the_live_frame_is_made_on_request(api: Api):
    c = api.client
    assert api_live(api).encodes == 0
    assert c.get("/api/cameras/gate/frame").status == 503  # the first ask: one is kept from now on
    api_live(api).offer(frame(1), [])
    r = c.get("/api/cameras/gate/frame")
    assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg" and decode(r.body).shape[1] == 640
    assert c.get("/api/cameras/side/frame").status == 404
    assert c.get("/api/cameras/..%2F/frame").status == 404


def api_live(api: Api) -> LiveFrames:
    console = api.server._console
    assert console is not None and console.parts.live is not None
    return console.parts.live


def test_events_export_as_csv_with_formulas_quoted(api: Api):
    api.store.write([decision(p, action=a) for p, a in (("AB123CD", "open"), ("XY999ZZ", "deny"),
                                                        ("AB123CX", "none"))])
    r = api.client.get("/api/events.csv?plate=ab123")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.body.decode())))
    assert rows[0][:3] == ["decided_at", "camera_id", "plate"]
    assert [row[2] for row in rows[1:]] == ["AB123CX", "AB123CD"]  # newest first, the filter applied
    assert api.client.get("/api/events.csv?limit=0").status == 400
    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _cell("-1+2") == "'-1+2" and _cell("AB12") == "AB12"


def test_off_loopback_pages_are_open_but_their_data_needs_a_login(tmp_path: Path):
    a = Api(tmp_path, bind="0.0.0.0", environ={"CONSOLE_PASSWORD": PASSWORD}, live=LiveFrames({"gate": []}))
    try:
        c = Client(a.server.port)
        assert c.get("/console/events").status == 200 and c.get("/static/console.js").status == 200
        for path in ("/api/cameras/gate/frame", "/api/events.csv", "/api/events"):
            assert c.get(path).status == 401, path
        assert c.call("POST", "/api/login", {"password": PASSWORD}).status == 200
        assert c.get("/api/events.csv").status == 200 and c.get("/api/cameras/gate/frame").status == 503
    finally:
        a.close()
