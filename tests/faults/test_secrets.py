"""Secrets inside URLs never reach a log line (any library's), /status, /metrics or the retained
MQTT summary: a webhook's ``user:password@``, a Home Assistant webhook id in its path, a token in
its query, and a camera password holding an ``@``."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent import redact
from agent.errors import ConfigError
from tests.faults.conftest import agent_config, http_get, wait_until
from tests.fixtures_mqtt import Broker, Subscriber, free_port
from tests.prserver import PRServer

pytestmark = pytest.mark.faults

HOOK_PASSWORD = "hook-pw-5e1d"
HOOK_ID = "ha-webhook-id-77f3"
HOOK_TOKEN = "tok-q-9931"
CAMERA_PASSWORD = "p@ss-8d2c"  # split on the first '@', its tail would show


class Failing(ThreadingHTTPServer):
    """Answers every POST 500: the webhook's failure path (and urllib3's debug lines) run."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def test_url_secrets_never_reach_logs_status_or_mqtt(tmp_path: Path, clips, caplog, mqtt_broker: Broker,
                                                     pr_sdk_server: PRServer, start_agent) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs each request's path at debug
    hook_server = Failing()
    port = hook_server.server_address[1]
    hook_url = f"http://agent:{HOOK_PASSWORD}@127.0.0.1:{port}/api/webhook/{HOOK_ID}?token={HOOK_TOKEN}"
    sub = Subscriber(mqtt_broker.port, "leak/status/summary")
    cfg = agent_config(
        tmp_path,
        cameras=[{"id": "gate", "source": str(clips(("AB12 CDE",))), "type": "file"},
                 {"id": "side", "source": f"rtsp://viewer:{CAMERA_PASSWORD}@127.0.0.1:{free_port()}/s",
                  "open_timeout_s": 1.0, "reconnect_max_s": 1.0}],
        reader={"type": "sdk", "url": pr_sdk_server.url, "rate_per_s": 0.0, "usage_poll_s": 0.0},
        mqtt={"enabled": True, "port": mqtt_broker.port, "prefix": "leak"},
        webhooks=[{"url": hook_url, "retries": 1, "backoff_max_s": 0.1}],
    )
    try:
        agent = start_agent(cfg)
        wait_until(lambda: agent.doc()["webhooks"][0]["failed"] >= 1, timeout_s=30, what="a failed webhook")
        wait_until(lambda: agent.doc()["cameras"]["side"]["last_error"], what="the camera's error")
        summary = sub.get(timeout=10).payload.decode()
        _, status = http_get(agent.port, "/status")
        metrics = agent.metrics()
        agent.close()
    finally:
        sub.close()
        hook_server.close()
    assert "webhook failed" in caplog.text and "500" in caplog.text
    assert "/api/webhook/" in caplog.text  # urllib3's own line, redacted
    texts = {"log": caplog.text, "status": status.decode(), "metrics": metrics, "mqtt summary": summary}
    for secret in (HOOK_PASSWORD, HOOK_ID, HOOK_TOKEN, CAMERA_PASSWORD, "ss-8d2c"):
        for name, text in texts.items():
            assert secret not in text, f"{name} shows {secret!r}"
    assert f"http://***@127.0.0.1:{port}/***" in status.decode()  # the target still recognisable
    assert "rtsp://***@127.0.0.1:" in caplog.text


def test_a_bad_url_in_the_config_is_reported_without_its_password() -> None:
    with pytest.raises(ConfigError) as err:
        agent_config(Path("/nonexistent"), webhooks=[{"url": f"http://u:{HOOK_PASSWORD}@host/x y"}])
    assert "webhooks[0].url" in str(err.value) and HOOK_PASSWORD not in str(err.value)


@pytest.mark.parametrize(("url", "shown", "shown_path"), [
    ("rtsp://admin:p@ss@10.0.0.5:554/h264", "rtsp://***@10.0.0.5:554/h264", "rtsp://***@10.0.0.5:554/***"),
    ("rtsp://u:pa/ss?x@host/s", "rtsp://***@host/s", "rtsp://***@host/***"),
    ("https://ha.local:8123/api/webhook/abc?token=t&flag", "https://ha.local:8123/api/webhook/***?token=***&***",
     "https://ha.local:8123/***"),
    ("http://localhost:8080/v1/plate-reader/", "http://localhost:8080/v1/plate-reader/", "http://localhost:8080/***"),
    ("http://h:1/", "http://h:1/", "http://h:1/"),
    ("/dev/video0", "/dev/video0", "/dev/video0"),
])
def test_redacted_url_forms(url: str, shown: str, shown_path: str) -> None:
    assert redact.url(url) == shown
    assert redact.url(url, path=False) == shown_path
    assert redact.text(f"error at {url} now") == f"error at {shown} now"
