"""A local stand-in for Plate Recognizer that speaks the contract (../shared/reference/snapshot-api.txt).

Cloud (token) or SDK (no token) flavour, throttling, 413, programmable faults, latency, the
vehicle-mode shape, /info/ and /v1/statistics/. It records every request for assertions. The plate
texts of an answer come from the test: ``read_image(request, decoded image)`` (a reader simulator
that judges the pixels: one result per plate it returns, none for []), ``plate_for(request)``, a
queue ``texts``, a per-camera ``plates`` mapping, else ``default_text``.

    server = PRServer(token="t").start()
    server.faults.extend(["502", "slow"])   # the next two lookups fail
    server.outage = "502"                   # every lookup fails until set back to None
    server.stop_listening(); server.resume()  # connection refused, then back on the same port
"""

from __future__ import annotations

import collections
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

LOOKUP_PATH = "/v1/plate-reader/"
STATS_PATH = "/v1/statistics/"
INFO_PATH = "/info/"
FAULTS = (
    "500", "502", "503",  # HTML body, as a proxy or a crashed worker sends
    "slow",  # answer after slow_s (past the client's timeout)
    "drop",  # close the connection without an answer
    "malformed",  # 200 with broken JSON
    "error",  # 200 with {"error": ...}
    "huge",  # 200 with a 5 MB body
    "nan",  # 200 with NaN scores
    "deep",  # 200 with JSON nested 100,000 deep
    "types",  # 200 with every field the wrong type
    "badutf8",  # 200 with bytes that are not UTF-8
    "403", "413", "429",  # forced, whatever the request
)
_HTML = "<html><head><title>{0}</title></head><body><h1>{0}</h1><hr>nginx</body></html>"


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    fields: dict[str, list[str]] = field(default_factory=dict)  # multipart text fields
    upload: bytes | None = None
    image_size: tuple[int, int] | None = None  # (w, h) of the decoded upload
    status: int = 0
    fault: str = ""
    at: float = 0.0  # time.monotonic() on arrival
    answer: Any = None  # the JSON sent back, when there was one


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return {}, {}
    fields: dict[str, list[str]] = collections.defaultdict(list)
    files: dict[str, bytes] = {}
    for part in body.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        disp = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', disp)
        if not name:
            continue
        if re.search(r'filename="', disp):
            files[name.group(1)] = content
        else:
            fields[name.group(1)].append(content.decode("utf-8", "replace"))
    return dict(fields), files


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or hang up are part of the tests


class PRServer:
    def __init__(
        self,
        *,
        token: str | None = "test-token",
        rate_per_s: float = 0.0,
        latency_s: float = 0.0,
        max_upload_bytes: int = 3_000_000,
        total_calls: int = 2500,
        slow_s: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token  # None: the SDK flavour (no auth, usage in every answer)
        self.rate_per_s = rate_per_s  # 0 = no throttling
        self.latency_s = latency_s
        self.max_upload_bytes = max_upload_bytes
        self.total_calls = total_calls
        self.calls = 0  # lookups answered with 200
        self.slow_s = slow_s
        self.vehicle_mode = False  # also on when the request's config asks for detection_mode=vehicle
        self.default_text = "ABC123"
        self.texts: collections.deque[str] = collections.deque()
        self.plates: dict[str, str] = {}
        self.plate_for: Callable[[Recorded], str | None] | None = None
        self.read_image: Callable[[Recorded, Any], list[str]] | None = None  # (request, BGR image) -> texts
        self.faults: collections.deque[str] = collections.deque()  # next lookups, one each
        self.outage: str | None = None  # a fault for every lookup while set
        self.requests: list[Recorded] = []
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._history: collections.deque[float] = collections.deque()
        self._httpd: ThreadingHTTPServer | None = None
        self._closing = threading.Event()
        self._conns: set[socket.socket] = set()  # open keep-alive connections, cut by stop_listening

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + LOOKUP_PATH

    def start(self) -> PRServer:
        handler = type("Handler", (_Handler,), {"server_ref": self})
        httpd = _QuietServer((self.host, self.port), handler)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name="prserver", daemon=True).start()
        return self

    def stop_listening(self) -> None:
        """Connection refused from now on (the port is kept for ``resume``); open connections are cut."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def resume(self) -> None:
        if self._httpd is None:
            self.start()

    def close(self) -> None:
        self._closing.set()
        self.stop_listening()

    def __enter__(self) -> PRServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ for assertions

    def lookups(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def statuses(self) -> list[int]:
        return [r.status for r in self.lookups()]

    # ------------------------------------------------------------ behaviour

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _throttled(self, now: float) -> float | None:
        """DRF-style sliding window; the wait in seconds when over the rate, else None."""
        if self.rate_per_s <= 0:
            return None
        num, duration = (int(self.rate_per_s), 1.0) if self.rate_per_s >= 1 else (1, 1 / self.rate_per_s)
        with self._lock:
            while self._history and self._history[0] <= now - duration:
                self._history.popleft()
            if len(self._history) >= num:
                return duration - (now - self._history[-1])
            self._history.append(now)
        return None

    def _next_fault(self) -> str:
        with self._lock:
            if self.outage:
                return self.outage
            return self.faults.popleft() if self.faults else ""

    def _text(self, rec: Recorded) -> str:
        if self.plate_for is not None:
            text = self.plate_for(rec)
            if text is not None:
                return text
        with self._lock:
            if self.texts:
                return self.texts.popleft()
        cam = (rec.fields.get("camera_id") or [""])[0]
        return self.plates.get(cam, self.default_text)

    def answer(self, rec: Recorded, image: Any = None) -> dict[str, Any]:
        """A plausible lookup answer for a decoded upload of ``rec.image_size``."""
        if self.read_image is not None and image is not None:
            texts = [t.lower() for t in self.read_image(rec, image)]
            doc = self._answer(rec, texts[0] if texts else "")
            if len(texts) > 1 and "candidates" in (doc["results"] or [{}])[0]:
                first = doc["results"][0]
                doc["results"] += [{**first, "plate": t, "candidates": [{"score": 0.904, "plate": t}]}
                                   for t in texts[1:]]
            return doc
        return self._answer(rec, self._text(rec).lower())

    def _answer(self, rec: Recorded, text: str) -> dict[str, Any]:
        w, h = rec.image_size or (100, 50)
        box = {"xmin": round(w * 0.1), "ymin": round(h * 0.25), "xmax": round(w * 0.9), "ymax": round(h * 0.75)}
        vbox = {"xmin": 0, "ymin": 0, "xmax": w, "ymax": h}
        region = ((rec.fields.get("regions") or ["us"])[0]).lower()
        cam: str | None = (rec.fields.get("camera_id") or [""])[0] or None
        ts = (rec.fields.get("timestamp") or ["2020-01-01T00:00:00Z"])[0]
        mmc = (rec.fields.get("mmc") or ["false"])[0] == "true"
        try:
            cfg = json.loads((rec.fields.get("config") or ["{}"])[0])
        except ValueError:
            cfg = {}
        alt = text[:-1] + ("8" if text[-1:] != "8" else "b") if text else ""
        doc: dict[str, Any] = {"processing_time": 12.3, "filename": "crop.jpg", "version": 1,
                               "camera_id": cam, "timestamp": ts}
        if self.vehicle_mode or (isinstance(cfg, dict) and cfg.get("detection_mode") == "vehicle"):
            props = {"make_model": [{"make": "Riley", "model": "RMF", "score": 0.339}],
                     "orientation": [{"value": "Front", "score": 0.939}],
                     "color": [{"value": "black", "score": 0.846}]}
            doc["results"] = [
                {"plate": {"type": "Plate", "score": 0.925, "box": box,
                           "props": {"plate": [{"value": text, "score": 0.9}, {"value": alt, "score": 0.1}],
                                     "region": [{"value": region, "score": 0.931}]}},
                 "vehicle": {"type": "Sedan", "score": 0.834, "box": vbox, "props": props}},
                {"plate": None,  # a vehicle without a readable plate
                 "vehicle": {"type": "Bus", "score": 0.5, "box": vbox, "props": props}},
            ]
        else:
            result: dict[str, Any] = {
                "box": box, "plate": text, "region": {"code": region, "score": 0.747},
                "vehicle": {"score": 0.798, "type": "Sedan", "box": vbox},
                "score": 0.904, "candidates": [{"score": 0.904, "plate": text}, {"score": 0.5, "plate": alt}],
                "dscore": 0.99,
            }
            if mmc:
                result["model_make"] = [{"make": "Riley", "model": "RMF", "score": 0.306}]
                result["color"] = [{"color": "black", "score": 0.937}]
                result["orientation"] = [{"orientation": "Front", "score": 0.937}]
            doc["results"] = [result] if text else []
        if self.token is None:
            doc["usage"] = {"max_calls": self.total_calls, "calls": self.calls}
        return doc

    def usage_doc(self, path: str) -> dict[str, Any]:
        if path == INFO_PATH:
            return {"version": "1.3.8", "license_key": "XXX", "total_calls": self.total_calls,
                    "usage": {"calls": self.calls}, "webhooks": []}
        return {"usage": {"month": 1, "calls": self.calls, "year": 2019,
                          "resets_on": "2019-01-14T00:00:00Z"}, "total_calls": self.total_calls}


class _Handler(BaseHTTPRequestHandler):
    server_ref: PRServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real service

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet)
        pass

    def setup(self) -> None:
        super().setup()
        with self.server_ref._lock:
            self.server_ref._conns.add(self.connection)

    def finish(self) -> None:
        with self.server_ref._lock:
            self.server_ref._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _send(self, rec: Recorded, status: int, body: bytes | dict[str, Any], ctype: str = "application/json") -> None:
        if isinstance(body, dict):
            rec.answer = body
            body = json.dumps(body).encode()
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        token = self.server_ref.token
        return token is None or self.headers.get("Authorization", "") == f"Token {token}"

    def do_GET(self) -> None:
        srv = self.server_ref
        rec = Recorded("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, at=time.monotonic())
        srv._record(rec)
        path = self.path.split("?")[0]
        if (path == INFO_PATH and srv.token is None) or (path == STATS_PATH and srv.token is not None):
            if not self._authorised():
                return self._send(rec, 403, {"detail": "Invalid token.", "status_code": 403})
            return self._send(rec, 200, srv.usage_doc(path))
        self._send(rec, 404, {"detail": "Not found."})

    def do_POST(self) -> None:
        srv = self.server_ref
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 64_000_000))
        rec = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, at=time.monotonic())
        rec.fields, files = parse_multipart(body, self.headers.get("Content-Type", ""))
        rec.upload = files.get("upload")
        srv._record(rec)
        if self.path.split("?")[0] != LOOKUP_PATH:
            return self._send(rec, 404, {"detail": "Not found."})
        fault = rec.fault = srv._next_fault()
        if fault == "drop":
            rec.status = -1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if len(body) > srv.max_upload_bytes or fault == "413":
            title = "413 Request Entity Too Large"
            return self._send(rec, 413, _HTML.format(title).encode(), "text/html")
        if not self._authorised() or fault == "403":
            return self._send(rec, 403, {"detail": "Invalid token.", "status_code": 403})
        wait = srv._throttled(rec.at)
        if wait is not None or fault == "429":
            secs = max(1, math.ceil(wait or 1))
            detail = f"Request was throttled. Expected available in {secs} second{'s' if secs != 1 else ''}."
            return self._send(rec, 429, {"detail": detail, "status_code": 429})
        if srv.latency_s:
            srv._closing.wait(srv.latency_s)
        if fault in ("500", "502", "503"):
            title = {"500": "500 Internal Server Error", "502": "502 Bad Gateway",
                     "503": "503 Service Unavailable"}[fault]
            return self._send(rec, int(fault), _HTML.format(title).encode(), "text/html")
        if fault == "slow":
            srv._closing.wait(srv.slow_s)
        if fault == "malformed":
            return self._send(rec, 200, b'{"results": [{"plate": "abc', "application/json")
        if fault == "error":
            return self._send(rec, 200, {"error": "Licence expired"})
        if fault == "huge":
            return self._send(rec, 200, b'{"results": [], "pad": "' + b"x" * 5_000_000 + b'"}')
        if fault == "deep":
            return self._send(rec, 200, b'{"results": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        if fault == "types":
            return self._send(rec, 200, {"results": [{"plate": 7, "score": "high", "box": [1, 2],
                                                      "candidates": "none", "region": 3}]})
        if fault == "badutf8":
            return self._send(rec, 200, b'{"results": [{"plate": "\xff\xfe\xc3", "score": 0.9}]}')
        if fault == "nan":
            return self._send(rec, 200, b'{"results": [{"plate": "abc", "score": NaN, "box": {}}]}')
        if not rec.upload:
            return self._send(rec, 400, {"upload": ["No file was submitted."]})
        img = cv2.imdecode(np.frombuffer(rec.upload, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return self._send(rec, 400, {"upload": ["Upload a valid image."]})
        rec.image_size = (img.shape[1], img.shape[0])
        doc = srv.answer(rec, img)
        with srv._lock:
            srv.calls += 1
        self._send(rec, 200, doc)
        return None


__all__ = ["FAULTS", "PRServer", "Recorded", "parse_multipart"]
