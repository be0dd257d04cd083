"""Webhook sink against a real local HTTP server: JSON and multipart formats, secret header,
retries with backoff, bounded queue, and a dead endpoint that never delays the caller."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.config import WebhookConfig
from agent.errors import SinkError
from agent.sinks.webhook import WebhookSink
from tests.sinks.test_mqtt import JPEG, decision, wait_until


class Server:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.hold: threading.Event | None = None  # set: each answer waits for it (a stuck endpoint)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if outer.hold is not None:
                    outer.hold.wait(60)
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sink(url: str, **kw) -> WebhookSink:
    extra = {k: kw.pop(k) for k in ("environ", "sleep", "rng") if k in kw}
    w = WebhookSink(WebhookConfig(url=url, timeout_s=kw.pop("timeout_s", 2.0), **kw), hook_id=3, **extra)
    w.start()
    return w


def test_json_format_with_secret_header(server: Server):
    w = sink(server.url, secret_header="X-Agent-Secret", secret_env="HOOK_SECRET", environ={"HOOK_SECRET": "k3y"})
    w.send(decision())
    wait_until(lambda: w.stats()["sent"] == 1)
    headers, body = server.requests[0]
    assert headers["content-type"] == "application/json" and headers["x-agent-secret"] == "k3y"
    doc = json.loads(body)
    assert doc["hook"] == {"target": server.url, "id": 3, "event": "image.done"}
    data = doc["data"]
    assert data["camera_id"] == "gate" and data["version"] == 1 and data["timestamp"].endswith("Z")
    assert data["results"][0]["plate"] == "AB123CD" and data["results"][0]["box"]["xmax"] == 110
    assert data["decision"]["action"] == "open" and data["decision"]["event_id"] == "e1"
    w.close()


def parts(headers: dict[str, str], body: bytes) -> dict[str, email.message.Message]:
    msg = email.message_from_bytes(b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body,
                                   policy=email.policy.HTTP)
    return {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}


def test_multipart_format_with_image(server: Server):
    w = sink(server.url, format="multipart")
    w.send(decision(with_crop=True))
    w.send(decision("e2"))  # no crop: still multipart, json only
    wait_until(lambda: w.stats()["sent"] == 2)
    headers, body = server.requests[0]
    assert headers["content-type"].startswith("multipart/form-data") and "x-agent-secret" not in headers
    p = parts(headers, body)
    assert json.loads(p["json"].get_content())["data"]["decision"]["event_id"] == "e1"
    assert p["upload"].get_content_type() == "image/jpeg" and p["upload"].get_payload(decode=True) == JPEG
    p2 = parts(*server.requests[1])
    assert set(p2) == {"json"}
    assert json.loads(p2["json"].get_payload(decode=True))["data"]["decision"]["event_id"] == "e2"
    w.close()


def test_retries_with_backoff_then_success_and_no_retry_on_400():
    server = Server([503, 502, 200, 400])
    waits: list[float] = []
    jitter = iter([1.0, 0.0])
    w = sink(server.url, retries=3, sleep=lambda s: waits.append(s) is not None, rng=lambda: next(jitter))
    w.send(decision())
    wait_until(lambda: w.stats()["sent"] == 1)
    assert len(server.requests) == 3 and w.stats()["retries"] == 2
    assert waits == [0.5, 0.5]  # 0.5 s at the top of its jitter, then 1 s at the bottom of its own
    w.send(decision("e2"))
    wait_until(lambda: w.stats()["failed"] == 1)
    assert len(server.requests) == 4 and "HTTP 400" in w.stats()["last_error"]
    w.close()
    server.close()


def test_dead_endpoint_never_delays_the_caller_and_queue_is_bounded(server: Server):
    server.hold = threading.Event()  # the endpoint takes the request and does not answer
    w = sink(server.url, timeout_s=60.0, retries=0, queue_size=5)
    w.send(decision("e0"))
    wait_until(lambda: len(server.requests) == 1 and w.stats()["pending"] == 0)  # in flight, stuck
    caller = threading.Thread(target=lambda: [w.send(decision(f"e{i}")) for i in range(1, 51)])
    caller.start()
    caller.join(20)  # a send that waited for the endpoint would wait 60 s
    assert not caller.is_alive()
    assert (w.stats()["queued"], w.stats()["pending"], w.stats()["dropped"]) == (6, 5, 45)  # one in flight
    server.hold.set()
    wait_until(lambda: w.stats()["sent"] == 6)
    w.close()


def test_close_waits_at_most_one_attempt():
    black_hole = socket.socket()  # accepts connections (backlog) but never answers
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    url = f"http://127.0.0.1:{black_hole.getsockname()[1]}/hook"
    w = sink(url, timeout_s=0.5, retries=0, queue_size=5)
    for i in range(3):
        w.send(decision(f"e{i}"))
    t0 = time.perf_counter()
    w.close()
    assert time.perf_counter() - t0 < 2.0  # close waits at most one attempt's timeout
    assert w.stats()["sent"] == 0 and w.stats()["dropped"] >= 2  # what was still queued is counted
    black_hole.close()


def test_connection_refused_is_retried_and_counted():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    waits: list[float] = []
    w = sink(f"http://127.0.0.1:{port}/", retries=4, backoff_max_s=0.75, rng=lambda: 1.0,
             sleep=lambda s: waits.append(s) is not None)
    w.send(decision())
    wait_until(lambda: w.stats()["failed"] == 1)
    assert w.stats()["retries"] == 4 and "ConnectionError" in w.stats()["last_error"]
    assert waits == [0.5, 0.75, 0.75, 0.75]  # doubling, never past backoff_max_s
    w.close()


def test_missing_secret_fails_at_start():
    with pytest.raises(SinkError, match="NOPE_SECRET"):
        sink("http://127.0.0.1:9/", secret_header="X-S", secret_env="NOPE_SECRET", environ={})
