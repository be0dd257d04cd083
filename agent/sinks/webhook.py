"""Webhook sink: each decision is POSTed to one target in Plate Recognizer's webhook formats, on the
sink's own thread, with retries and a bounded queue (full: drop and count). ``send`` never waits.

``json``: ``{"hook": {"target", "id", "event"}, "data": {...}}``; ``multipart``: the same document
in the ``json`` field plus the crop as the ``upload`` file.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from typing import Any
from collections.abc import Callable, Mapping

from .. import httpdeadline, redact
from ..backoff import backoff_s
from ..config import WebhookConfig
from ..environ import secret
from ..errors import SinkError
from ..events import decision_payload, iso, read_payload
from ..types import Decision
from . import crop_jpeg

logger = logging.getLogger(__name__)

EVENT = "image.done"  # what Plate Recognizer's own webhooks send; receivers key on it
BACKOFF_FIRST_S = 0.5
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_ANSWER_BYTES = 65536  # the answer is not used; read only so the connection can be kept


class DeliveryError(SinkError):
    """One POST failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def document(decision: Decision, target: str, hook_id: int) -> dict[str, Any]:
    """The webhook body: Snapshot's ``data`` (results etc.) plus this agent's ``decision``."""
    r = decision.read
    result = read_payload(r)
    data = {
        "processing_time": 0,
        "timestamp": iso(r.wall_time),
        "results": [result],
        "filename": f"{decision.camera_id}_{decision.event_id}.jpg",
        "version": 1,
        "camera_id": decision.camera_id,
        "decision": decision_payload(decision),
    }
    return {"hook": {"target": target, "id": hook_id, "event": EVENT}, "data": data}


class WebhookSink:
    def __init__(self, cfg: WebhookConfig, hook_id: int = 1, *, environ: Mapping[str, str] | None = None,
                 sleep: Callable[[float], bool] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        self._cfg = cfg
        self._rng = rng  # the retry delays' jitter
        self.hook_id = hook_id
        self.shown_url = redact.url(cfg.url, path=False)  # the path of a webhook URL is often its secret
        self._environ = environ
        self._queue: queue.Queue[Decision | None] = queue.Queue(maxsize=cfg.queue_size)
        self._stop = threading.Event()
        self._wait = sleep or self._stop.wait  # returns True when stopping
        self._thread: threading.Thread | None = None
        self._headers: dict[str, str] = {}
        self._counts = dict.fromkeys(("queued", "sent", "failed", "retries", "dropped"), 0)
        self._last_error = ""
        self._last_ok = ""

    def start(self) -> None:
        if self._cfg.secret_header:
            value = secret(self._cfg.secret_env, self._environ)
            if not value:
                raise SinkError(f"webhook {self.shown_url}: secret_header set but ${self._cfg.secret_env} is empty")
            self._headers[self._cfg.secret_header] = value
        self._thread = threading.Thread(target=self._run, name=f"webhook-{self.hook_id}", daemon=True)
        self._thread.start()

    def send(self, decision: Decision) -> None:
        try:
            self._queue.put_nowait(decision)
            self._counts["queued"] += 1
        except queue.Full:
            self._counts["dropped"] += 1
            logger.warning("webhook queue full, event dropped url=%s event_id=%s", self.shown_url, decision.event_id)

    def close(self) -> None:
        """Stop after the current attempt; what is still queued is dropped and counted."""
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(self._cfg.timeout_s + 1.0)
            self._thread = None
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    self._counts["dropped"] += 1
            except queue.Empty:
                break

    # ------------------------------------------------------------ worker

    def _run(self) -> None:
        session = httpdeadline.session()
        try:
            while not self._stop.is_set():
                d = self._queue.get()
                if d is None:
                    break
                try:
                    self._deliver(session, d)
                except Exception:  # the thread's one catch-all
                    self._counts["failed"] += 1
                    logger.exception("webhook delivery crashed url=%s", self.shown_url)
        finally:
            session.close()

    def _deliver(self, session: Any, d: Decision) -> None:
        for attempt in range(self._cfg.retries + 1):
            if attempt:
                self._counts["retries"] += 1
                if self._wait(backoff_s(attempt - 1, BACKOFF_FIRST_S, self._cfg.backoff_max_s, self._rng)):
                    break
            try:
                self._post(session, d)
            except DeliveryError as err:
                self._last_error = str(err)
                logger.warning("webhook failed url=%s attempt=%d/%d error=%s", self.shown_url, attempt + 1,
                               self._cfg.retries + 1, err)
                if not err.retry:
                    break
                continue
            self._counts["sent"] += 1
            self._last_ok = iso(time.time())
            return
        self._counts["failed"] += 1

    def _post(self, session: Any, d: Decision) -> None:
        doc = document(d, self._cfg.url, self.hook_id)
        kwargs: dict[str, Any] = {"headers": dict(self._headers)}
        jpeg = crop_jpeg(d)
        if self._cfg.format == "multipart":
            kwargs["data"] = {"json": json.dumps(doc)}
            if jpeg is not None:
                kwargs["files"] = {"upload": (doc["data"]["filename"], jpeg, "image/jpeg")}
            else:  # still multipart/form-data, just without the image
                kwargs["files"] = {"json": (None, json.dumps(doc), "application/json")}
                del kwargs["data"]
        else:
            kwargs["json"] = doc
        try:  # timeout_s is the whole attempt: a receiver trickling its answer is cut off there
            t = self._cfg.timeout_s
            status = httpdeadline.fetch(session, "POST", self._cfg.url, connect_s=t, read_s=t, total_s=t,
                                        max_bytes=MAX_ANSWER_BYTES, **kwargs).status
        except httpdeadline.AnswerTooLarge as err:
            status = err.status  # delivered or not, the answer's body is of no use
        except httpdeadline.HttpError as err:
            raise DeliveryError(f"{type(err).__name__}: {err}", retry=True) from err
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}", retry=status in RETRY_STATUS)

    @property
    def alive(self) -> bool:
        """The delivery thread runs (or was never started)."""
        return self._thread is None or self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        return {"url": self.shown_url, "pending": self._queue.qsize(), **self._counts,
                "last_error": self._last_error, "last_ok": self._last_ok}
