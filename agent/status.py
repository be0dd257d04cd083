"""Operations: the status document (``GET /status``, 200 healthy / 503 not), Prometheus text
(``GET /metrics``) and the small HTTP server that serves both on its own thread, and hands
``/api/`` and ``/static/`` to the web console's router (``web.api``) when one is given.

Built only from the parts' ``stats()`` dicts; every string is scrubbed of known secrets and URL
credentials before it leaves the process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import redact
from .boundedhttp import BoundedHTTPServer, is_loopback
from .config import Config, StatusConfig
from .environ import secret
from .dbfile import MEMORY
from .events import iso
from .health import STATUS_HTTP
from .metrics import metrics_text
from .web.http import HttpError, error_response, read_request

if TYPE_CHECKING:
    from .web.api import Console

logger = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0  # fps processed: counted over this window
THROTTLED_RECENT_S = 60.0  # a 429 within this long: "rate_limited"
REQUEST_TIMEOUT_S = 5.0  # a client connection is closed after this long in all, however it trickles
HTTP_WORKERS = 4  # requests served at once; a few more wait, the rest are answered 503 at once
HTTP_QUEUED = 16


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every secret replaced by ``***`` and every URL in it redacted."""
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "***")
        return redact.text(value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


def known_secrets(cfg: Config) -> list[str]:
    """Values that must never reach the status output: the token, the passwords, the webhook
    secrets and camera URL passwords (the log never gets them in the first place)."""
    names = ["PLATE_RECOGNIZER_TOKEN", "MQTT_PASSWORD"]
    names += [h.secret_env for h in cfg.webhooks if h.secret_header]
    values = [secret(n) or "" for n in names]
    for cam in cfg.cameras:
        try:
            values.append(urlsplit(cam.source).password or "")
        except ValueError:
            pass
    return [v for v in values if len(v) >= 4]  # a 1-3 character "secret" would blank out digits


class StatusBoard:
    """Shapes the parts' stats (``health.Report.stats``: cameras, reader, relay, mqtt, webhooks by
    name) into the status document; ``sample()`` feeds the fps window.

    Thread-safe: the HTTP threads, the supervisor (MQTT summary) and ``sample()`` share it.
    """

    def __init__(
        self,
        stats: Callable[[], dict[str, Any]],
        *,
        frame_timeout_s: Mapping[str, float],
        reader_type: str = "none",
        reader_rate_per_s: float = 0.0,
        summary: Callable[[], str] = lambda: "",
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._stats = stats
        self._frame_timeout_s = dict(frame_timeout_s)
        self._reader_type = reader_type
        self._reader_rate = reader_rate_per_s
        self._summary = summary
        self._secrets = [s for s in secrets if s]
        self._clock = clock
        self._wall = wall
        self._started = clock()
        self._lock = threading.Lock()
        self._processed: dict[str, deque[tuple[float, int]]] = {}
        self._throttled = (0, float("-inf"))  # (count, when it last grew)

    def sample(self, processed: Mapping[str, int]) -> None:
        """Record each camera's processed-frame count (the supervisor calls this about once a second)."""
        now = self._clock()
        with self._lock:
            for cid, n in processed.items():
                window = self._processed.setdefault(cid, deque(maxlen=64))
                window.append((now, n))
                while len(window) > 2 and now - window[0][0] > RATE_WINDOW_S:
                    window.popleft()

    def _fps_processed(self, cid: str) -> float:
        with self._lock:
            window = self._processed.get(cid)
            if not window or len(window) < 2:
                return 0.0
            (t0, n0), (t1, n1) = window[0], window[-1]
        return round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else 0.0

    def document(self) -> dict[str, Any]:
        """The /status document (see README "Status"); ``ok`` decides 200 or 503."""
        stats = self._stats()
        now, wall = self._clock(), self._wall()
        cams = stats.get("cameras", {})
        self.sample({cid: int(c.get("frames_processed", c.get("frames", 0))) for cid, c in cams.items()})
        cameras = {cid: self._camera(cid, c, now) for cid, c in cams.items()}
        reader = self._reader(stats.get("reader"), now, wall)
        mqtt = self._mqtt(stats.get("mqtt"))
        # an outbox in memory works, but loses what it holds at a restart: not healthy
        in_memory = (reader.get("outbox") or {}).get("storage") == MEMORY or mqtt.get("outbox_storage") == MEMORY
        relay = self._relay(stats.get("relay"))
        doc = {
            "ok": (all(c["ok"] for c in cameras.values()) and reader["ok"] and bool(mqtt["alive"]) and not in_memory
                   and relay["ok"] is not False),
            "time": iso(wall),
            "uptime_s": round(now - self._started, 1),
            "summary": self._summary(),
            "cameras": cameras,
            "reader": reader,
            "mqtt": mqtt,
            "relay": relay,
            "clock": self._clock_doc(stats.get("clock"), stats.get("rules")),
            "webhooks": [
                {"name": name, **{k: s.get(k) for k in ("url", "pending", "sent", "failed", "dropped", "last_error")}}
                for name, s in stats.get("webhooks", {}).items()
            ],
            "events": int(stats.get("dispatch", {}).get("events", 0)),
            "history": self._history(stats.get("history")),
            "detector": stats.get("detector"),  # the shared models: how many, cameras waiting now
            "stages": stats.get("stages") or {},  # read (uploads), sinks (decisions sent)
        }
        return scrub(doc, self._secrets)  # type: ignore[no-any-return]

    def _camera(self, cid: str, c: Mapping[str, Any], now: float) -> dict[str, Any]:
        last = c.get("last_frame_mono")
        age = round(now - last, 3) if last is not None else None
        timeout = self._frame_timeout_s.get(cid, 5.0)
        fresh = bool(c.get("connected")) and age is not None and age <= timeout
        return {
            "ok": fresh or bool(c.get("ended")),  # a file that played out is done, not broken
            "connected": bool(c.get("connected")),
            "ended": bool(c.get("ended")),
            "fps_in": c.get("fps_in", 0.0),
            "fps_processed": self._fps_processed(cid),
            "last_frame_age_s": age,
            "reconnects": c.get("reconnects", 0),
            "stalls": c.get("stalls", 0),
            "dropped_frames": c.get("dropped", 0),
            "corrupt_frames": c.get("corrupt", 0),
            "frames_in": c.get("frames_in", 0),
            "frames_processed": c.get("frames_processed", 0),
            "motion_frames": c.get("motion_frames", 0),
            "plates": c.get("detections", 0),
            "uploads": c.get("uploads", 0),
            # its turns at the shared detector: calls, wait_ms_mean / wait_ms_max (for its turn), ms_total (running)
            "detector": {k[9:]: v for k, v in sorted(c.items()) if k.startswith("detector_")},
            # time per stage, summed: {stage: {calls, ms, cpu_ms}} (decode, motion, detector, crop)
            "stages": c.get("stages") or {},
            # backend (pyav | opencv), idle_keyframes (on and supported by the backend), mode (full |
            # keyframes: only keyframes while nothing moves), keyframes, packets_skipped,
            # wakes, catch_up_packets, catch_up_ms_mean/max (decoding the kept packets on waking),
            # wake_ms_mean/max (from motion seen to the current frame delivered)
            "decoding": c.get("decoding") or {},
            # crops the upload gate kept back, by why (static, cut, in_flight, done, ...)
            "held": {k[5:]: v for k, v in sorted(c.items()) if k.startswith("held_")},
            "unread_passes": c.get("unread", 0),
            "static_objects": list(c.get("static_objects", [])),
            "errors": c.get("errors", 0),
            "last_error": c.get("last_error") or None,
        }

    def _reader(self, r: Mapping[str, Any] | None, now: float, wall: float) -> dict[str, Any]:
        if r is None:
            return {"ok": True, "type": self._reader_type, "state": "off"}
        throttled = int(r.get("throttled", 0))
        with self._lock:
            if throttled > self._throttled[0]:
                self._throttled = (throttled, now)
            recent = now - self._throttled[1] <= THROTTLED_RECENT_S
        usage = r.get("usage") or {}
        outbox = r.get("outbox") or {}
        last_ok, until = r.get("last_success"), r.get("forbidden_until")
        return {
            "ok": r.get("state") == "ok" and r.get("reachable") is not False and bool(r.get("alive", True)),
            "type": self._reader_type,
            "state": r.get("state"),  # ok | unavailable | forbidden (uploads paused)
            "reachable": r.get("reachable"),  # the last upload or usage poll got an answer
            "rate_limited": recent,
            "rate_per_s": self._reader_rate,
            "throttled_total": throttled,
            "forbidden_until": iso(until) if until else None,
            "last_success": iso(last_ok) if last_ok else None,
            "last_success_age_s": round(wall - last_ok, 1) if last_ok else None,
            "last_error": r.get("last_error"),
            "quota": {"used": usage.get("calls"), "limit": usage.get("limit"),
                      "resets_on": usage.get("resets_on") or None} if usage else None,
            "outbox": {
                "depth": outbox.get("depth"),
                "oldest_age_s": None if outbox.get("oldest_age_s") is None else round(outbox["oldest_age_s"], 1),
                "evicted": outbox.get("evicted", 0),
                "storage": outbox.get("storage"),  # disk | memory (lost at a restart) | None
                "storage_error": outbox.get("storage_error"),
                "moved_aside": outbox.get("moved_aside"),  # a damaged file, kept for a look
            },
            "queued": r.get("queued", 0),
            "uploads": r.get("uploads", 0),
            "crops_read": r.get("crops_read", 0),
            "reads": r.get("reads", 0),
            "late_reads": r.get("late_reads", 0),
            "errors": dict(r.get("errors", {})),
            "parked": dict(r.get("parked", {})),
            "dropped": dict(r.get("dropped", {})),
        }

    @staticmethod
    def _mqtt(m: Mapping[str, Any] | None) -> dict[str, Any]:
        if m is None:
            return {"enabled": False, "connected": False, "alive": True}
        keys = ("connected", "outbox", "outbox_dropped", "outbox_storage", "outbox_storage_error",
                "outbox_moved_aside", "memory_queue", "memory_queue_bytes",
                "connects", "disconnects", "acked", "callback_errors", "failing", "commands",
                "commands_rejected", "commands_rejected_by", "last_error")
        return {"enabled": True, "alive": bool(m.get("alive", True)), **{k: m.get(k) for k in keys}}

    @staticmethod
    def _clock_doc(c: Mapping[str, Any] | None, rules: Mapping[str, Any] | None) -> dict[str, Any]:
        """Whether the wall clock counts; until it does, dated and scheduled allow rules are off."""
        synced = bool((c or {}).get("synchronised"))
        return {"synchronised": synced, "source": (c or {}).get("source"),
                "dated_rules": int((rules or {}).get("dated", 0)), "dated_rules_active": synced}

    @staticmethod
    def _history(h: Mapping[str, Any] | None) -> dict[str, Any]:
        """The event store: what it wrote, dropped (queue full) and evicted (quota), where it keeps it."""
        if h is None:
            return {"enabled": False}
        keys = ("events", "reads", "dropped_events", "dropped_reads", "evicted", "errors", "queued", "bytes",
                "quota_bytes", "storage", "storage_error", "moved_aside")
        return {"enabled": True, **{k: h.get(k, 0) for k in keys}}

    @staticmethod
    def _relay(g: Mapping[str, Any] | None) -> dict[str, Any]:
        if g is None:
            return {"type": "none", "state": None, "ok": True, "last_pulse": None}
        keys = ("type", "state", "ok", "failing_s", "last_pulse", "pulses", "forced_off", "skipped_failing", "errors",
                "last_error")
        return {k: g.get(k) for k in keys}


class _Handler(BaseHTTPRequestHandler):
    board: StatusBoard
    console: Console | None
    timeout = REQUEST_TIMEOUT_S
    server_version = "plate-agent"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("status http %s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.console is not None and self.console.owns(path):
            self._console()
            return
        try:
            if path == "/status":
                doc = self.board.document()
                self._send(200 if doc["ok"] else 503, json.dumps(doc, indent=1).encode(), "application/json")
            elif path == "/metrics":
                text = metrics_text(self.board.document())
                self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b'{"error": "not found; try /status or /metrics"}', "application/json")
        except Exception:  # this request fails, the server goes on
            logger.exception("status request failed path=%s", path)
            self._send(500, b'{"error": "internal error"}', "application/json")

    def do_POST(self) -> None:
        self._console()

    def do_PUT(self) -> None:
        self._console()

    def do_DELETE(self) -> None:
        self._console()

    def _console(self) -> None:
        """A request for the console's router: a bounded query and body, one response."""
        if self.console is None or not self.console.owns(self.path.partition("?")[0]):
            self._send(404, b'{"error": "not found; try /status or /metrics"}', "application/json")
            return
        try:
            resp = self.console.handle(read_request(self))
        except HttpError as err:
            resp = error_response(err)
            self.close_connection = True  # what is left of the request is not read
        except OSError:
            return  # the client went away
        self._send(resp.status, resp.body, resp.content_type, resp.headers)

    def _send(self, status: int, body: bytes, ctype: str, headers: list[tuple[str, str]] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers or []:
                if name != "Cache-Control":
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away
            pass


class StatusServer:
    """``GET /status`` and ``GET /metrics`` on ``bind:port`` (port 0: any free port, see ``port``), and the
    console's ``/api/`` and ``/static/`` when it has one."""

    def __init__(self, cfg: StatusConfig, board: StatusBoard, console: Console | None = None) -> None:
        self._cfg = cfg
        self._board = board
        self._console = console
        self._httpd: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve on the STATUS_HTTP thread; raises OSError when the address is taken."""
        handler = type("Handler", (_Handler,), {"board": self._board, "console": self._console})
        self._httpd = BoundedHTTPServer((self._cfg.bind, self._cfg.port), handler, workers=HTTP_WORKERS,
                                        queued=HTTP_QUEUED, deadline_s=REQUEST_TIMEOUT_S, name=STATUS_HTTP)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=STATUS_HTTP, daemon=True)
        self._thread.start()
        logger.info("status server listening address=%s port=%d", self._cfg.bind, self.port)
        if not is_loopback(self._cfg.bind):
            logger.warning("status server reachable from the network address=%s: /status and /metrics have no"
                           " authentication; bind it to 127.0.0.1 or firewall the port", self._cfg.bind)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1]) if self._httpd is not None else 0

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def close(self) -> None:
        """Stop serving; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None


__all__ = ["StatusBoard", "StatusServer", "known_secrets", "scrub"]
