"""The status board, the Prometheus text and the HTTP server, from hand-made stats."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import StatusConfig, parse
from agent.service import Service
from agent.metrics import metrics_text
from agent.status import StatusBoard, scrub
from agent.types import Box, PlateRead
from tests.sinks.test_webhook import Server as WebhookServer

NOW = 1000.0


def stats(connected: bool = True, reader_state: str = "ok", age_s: float = 0.1,
          mqtt_alive: bool = True) -> dict[str, Any]:
    return {
        "cameras": {"gate": {"connected": connected, "ended": False, "fps_in": 15.0, "frames_in": 300,
                             "frames_processed": 200, "last_frame_mono": NOW - age_s, "reconnects": 2,
                             "dropped": 7, "corrupt": 1, "stalls": 0, "last_error": "rtsp://u:pw@cam/x: refused"}},
        "reader": {"state": reader_state, "reachable": True, "throttled": 0, "queued": 0, "uploads": 5,
                   "crops_read": 5, "reads": 5, "late_reads": 0, "errors": {"throttled": 0}, "parked": {},
                   "dropped": {}, "forbidden_until": None, "last_success": 1.7e9, "last_error": None,
                   "usage": {"calls": 12, "limit": 2500, "resets_on": ""},
                   "outbox": {"depth": 3, "oldest_age_s": 12.345, "evicted": 1, "storage": "disk"}},
        "dispatch": {"events": 4},
        "relay": {"type": "gpio", "state": "off", "pulses": 1, "last_pulse": {"at": "x"}},
        "mqtt": {"connected": False, "outbox": 0, "last_error": "connect refused", "alive": mqtt_alive},
        "webhooks": {"webhook-1": {"url": "http://a/hook", "sent": 2},
                     "webhook-2": {"url": "http://b/hook", "sent": 3}},
    }


def board(**kw: Any) -> StatusBoard:
    return StatusBoard(lambda: stats(**kw), frame_timeout_s={"gate": 5.0}, reader_type="cloud",
                       secrets=["sekrit-token"], clock=lambda: NOW, wall=lambda: 1.7e9 + 60)


def test_an_outbox_in_memory_is_not_healthy() -> None:
    def with_memory(where: str) -> dict[str, Any]:
        s = stats()
        if where == "reader":
            s["reader"]["outbox"].update(storage="memory", storage_error="unable to open (Read-only file system)")
        else:
            s["mqtt"].update(outbox_storage="memory", outbox_storage_error="disk full")
        return s

    for where in ("reader", "mqtt"):
        b = StatusBoard(lambda w=where: with_memory(w), frame_timeout_s={"gate": 5.0}, clock=lambda: NOW)
        doc = b.document()
        assert doc["ok"] is False, where
        assert f"{where}_outbox_in_memory 1" in metrics_text(doc)
    assert board().document()["ok"] is True


def test_document_shape_and_health() -> None:
    doc = board().document()
    assert doc["ok"] is True
    cam = doc["cameras"]["gate"]
    assert (cam["connected"], cam["fps_in"], cam["last_frame_age_s"], cam["reconnects"], cam["dropped_frames"]) == (
        True, 15.0, 0.1, 2, 7)
    assert "pw" not in cam["last_error"] and "***@" in cam["last_error"]
    r = doc["reader"]
    assert r["quota"] == {"used": 12, "limit": 2500, "resets_on": None}
    assert r["outbox"] == {"depth": 3, "oldest_age_s": 12.3, "evicted": 1, "storage": "disk",
                           "storage_error": None, "moved_aside": None} and r["last_success_age_s"] == 60.0
    assert doc["mqtt"]["enabled"] is True and doc["mqtt"]["alive"] is True  # a broker away: alive
    assert {k: doc["mqtt"][k] for k in ("connected", "outbox", "last_error", "outbox_storage")} == {
        "connected": False, "outbox": 0, "last_error": "connect refused", "outbox_storage": None}
    assert doc["relay"]["state"] == "off" and doc["relay"]["last_pulse"] == {"at": "x"}
    assert [(w["name"], w["url"], w["sent"]) for w in doc["webhooks"]] == [("webhook-1", "http://a/hook", 2),
                                                                           ("webhook-2", "http://b/hook", 3)]
    assert board(connected=False).document()["ok"] is False
    assert board(age_s=6.0).document()["ok"] is False  # connected but no frame for longer than the timeout
    assert board(reader_state="forbidden").document()["ok"] is False
    assert board(mqtt_alive=False).document()["ok"] is False  # its callbacks keep failing


def test_scrub_removes_secrets_and_url_credentials() -> None:
    doc = {"a": ["x sekrit-token y", {"b": "rtsp://admin:hunter2@10.0.0.1/s"}], "n": 3}
    assert scrub(doc, ["sekrit-token"]) == {"a": ["x *** y", {"b": "rtsp://***@10.0.0.1/s"}], "n": 3}


def test_metrics_are_valid_prometheus_text() -> None:
    text = metrics_text(board().document())
    sample = re.compile(r'^plate_agent_[a-z_]+(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? -?[0-9.e+-]+$')
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            types[name] = kind
        elif not line.startswith("# HELP"):
            assert sample.match(line), line
    assert all(name.endswith("_total") for name, kind in types.items() if kind == "counter")
    assert 'plate_agent_camera_dropped_frames_total{camera="gate"} 7' in text
    assert "plate_agent_reader_outbox_depth 3" in text and "plate_agent_reader_quota_limit 2500" in text
    assert "plate_agent_mqtt_connected 0" in text and "plate_agent_relay_on 0" in text


def get(port: int, path: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers["Content-Type"]


def test_server_binds_loopback_by_default_and_answers(server_for) -> None:
    assert StatusConfig().bind == "127.0.0.1"
    s = server_for(board())
    assert s._httpd is not None and s._httpd.server_address[0] == "127.0.0.1"
    code, body, ctype = get(s.port, "/status")
    assert code == 200 and ctype == "application/json" and json.loads(body)["ok"] is True
    code, body, ctype = get(s.port, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4") and b"plate_agent_up 1" in body
    assert get(s.port, "/nope")[0] == 404
    assert b"sekrit-token" not in body


def test_unhealthy_is_503_and_a_failing_board_is_500_not_a_dead_server(server_for) -> None:
    s = server_for(board(connected=False))
    assert get(s.port, "/status")[0] == 503
    broken = StatusBoard(lambda: 1 / 0, frame_timeout_s={})  # type: ignore[arg-type, return-value]
    s2 = server_for(broken)
    assert get(s2.port, "/status")[0] == 500
    assert get(s2.port, "/status")[0] == 500 and s2.alive


def test_bind_elsewhere_only_when_told(server_for) -> None:
    s = server_for(board(), bind="0.0.0.0")
    assert s._httpd is not None and s._httpd.server_address[0] == "0.0.0.0"
    with socket.create_connection(("127.0.0.1", s.port), timeout=2):
        pass


class StillCamera:
    """A camera that always shows the same grey picture."""

    frame_interval_s = 1 / 10

    def open(self) -> None:
        pass

    def read(self) -> object:
        return np.full((240, 320, 3), 80, np.uint8)

    def close(self) -> None:
        pass


def test_every_webhook_shows_on_status_under_its_name(tmp_path: Path) -> None:
    """Two webhooks to two receivers: /status of the running agent lists both, each with its own counts."""
    ok, refusing = WebhookServer(), WebhookServer(statuses=[400])  # 400 is not retried: one failure
    cfg = parse({
        "cameras": [{"id": "gate", "source": "fake://"}],
        "webhooks": [{"url": ok.url}, {"url": refusing.url.replace("/hook", "/other")}],
        "storage": {"state_dir": str(tmp_path / "state")},
        "status": {"port": 0},
    })
    service = Service(cfg, source_factory=lambda cam: StillCamera())
    try:
        service.start()
        assert service.status.server is not None
        port = service.status.server.port
        service.parts.dispatcher.handle(PlateRead("gate", "AB12CDE", 0.9, 0.9, Box(10, 10, 110, 40), time.time(),
                                                  time.monotonic()))
        service.parts.dispatcher.tick(everything=True)

        def hooks() -> list[dict[str, Any]]:
            return json.loads(get(port, "/status")[1])["webhooks"]

        deadline = time.monotonic() + 10
        while [(h["sent"], h["failed"]) for h in hooks()] != [(1, 0), (0, 1)] and time.monotonic() < deadline:
            time.sleep(0.05)
        got = hooks()
        shown = ok.url.replace("/hook", "/***"), refusing.url.replace("/hook", "/***")  # a path may be a secret
        assert [(h["name"], h["url"], h["sent"], h["failed"]) for h in got] == [
            ("webhook-1", shown[0], 1, 0), ("webhook-2", shown[1], 0, 1)]
        assert len(ok.requests) == 1 and len(refusing.requests) == 1
    finally:
        service.close()
        ok.close()
        refusing.close()


def test_a_port_already_taken_is_an_os_error() -> None:
    """The service logs an OSError and runs without its status server; anything else stops it."""
    import socket
    from http.server import BaseHTTPRequestHandler

    from agent.boundedhttp import BoundedHTTPServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            BoundedHTTPServer(taken.getsockname(), BaseHTTPRequestHandler)
