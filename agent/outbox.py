"""A small durable FIFO on sqlite (WAL): items survive broker/cloud outages and agent restarts.

Generic: an item is a key (e.g. an MQTT topic), a byte body and a small JSON meta dict. The owner
deletes an item once its delivery is confirmed. Bounded by count, size and age (oldest dropped first).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

from .config import StorageConfig
from .errors import AgentError

logger = logging.getLogger(__name__)


class OutboxError(AgentError, OSError):
    """The outbox database cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    key: str
    body: bytes
    meta: dict[str, Any]
    created: float  # wall time


class Outbox:
    """Thread-safe; every method is a short transaction under one lock."""

    def __init__(self, path: Path, cfg: StorageConfig, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._cfg = cfg
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def open(self) -> Outbox:
        """Create or open the database; idempotent. Raises OutboxError (fail fast at startup)."""
        with self._lock:
            if self._db is not None:
                return self
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
                db.execute(
                    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " key TEXT NOT NULL, body BLOB NOT NULL, meta TEXT NOT NULL, created REAL NOT NULL)"
                )
            except (sqlite3.Error, OSError) as err:
                raise OutboxError(f"cannot open outbox {self.path}: {err}") from err
            self._db = db
        return self

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def put(self, key: str, body: bytes, meta: dict[str, Any] | None = None) -> int:
        """Append one item; returns its id. Trims the oldest items beyond the configured bounds."""
        db = self._conn()
        with self._lock:
            try:
                cur = db.execute("INSERT INTO outbox (key, body, meta, created) VALUES (?, ?, ?, ?)",
                                 (key, body, json.dumps(meta or {}), self._clock()))
                self._trim(db)
            except sqlite3.Error as err:
                raise OutboxError(f"outbox write failed: {err}") from err
            return int(cur.lastrowid or 0)

    def _trim(self, db: sqlite3.Connection) -> None:
        cfg = self._cfg
        n = 0
        n += db.execute("DELETE FROM outbox WHERE created < ?", (self._clock() - cfg.outbox_max_age_s,)).rowcount
        n += db.execute(
            "DELETE FROM outbox WHERE id NOT IN (SELECT id FROM outbox ORDER BY id DESC LIMIT ?)",
            (cfg.outbox_max_items,),
        ).rowcount
        max_bytes = int(cfg.outbox_max_mb * 1_000_000)
        total = db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM outbox").fetchone()[0]
        while total > max_bytes:
            row = db.execute("SELECT id, LENGTH(body) FROM outbox ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
            total -= row[1]
            n += 1
        if n:
            self.dropped += n
            logger.warning("outbox full or old, dropped=%d path=%s", n, self.path)

    def pending(self, limit: int = 1000, after_id: int = 0) -> list[Item]:
        """Oldest first."""
        db = self._conn()
        with self._lock:
            rows = db.execute("SELECT id, key, body, meta, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                              (after_id, limit)).fetchall()
        return [Item(r[0], r[1], bytes(r[2]), json.loads(r[3]), r[4]) for r in rows]

    def delete(self, item_id: int) -> None:
        db = self._conn()
        with self._lock:
            try:
                db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
            except sqlite3.Error as err:
                raise OutboxError(f"outbox delete failed: {err}") from err

    def __len__(self) -> int:
        db = self._conn()
        with self._lock:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
