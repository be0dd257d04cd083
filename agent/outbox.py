"""A small durable FIFO on sqlite (WAL): items survive broker/cloud outages and agent restarts.

Generic: an item is a key (e.g. an MQTT topic), a byte body and a small JSON meta dict. The owner
deletes an item once its delivery is confirmed. Bounded by count, size and age (oldest dropped first).

Ages are monotonic within a boot: each row keeps the boot id and monotonic time it was put in, so a
wall clock stepped by NTP never expires anything. A row from an earlier boot is aged by the wall
clock only when both its stamp and the clock now are synchronised; otherwise its age is unknown and
counts from the first time this boot sees it.

A bad disk never stops it (``dbfile``): a damaged file is moved aside, an unwritable one is replaced
by a smaller outbox in memory; ``storage()`` says which.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import timebase
from . import dbfile
from .config import StorageConfig
from .errors import AgentError

logger = logging.getLogger(__name__)

T = TypeVar("T")

MEMORY_MAX_MB = 20.0  # an outbox that fell back to memory holds at most this (a Pi has little RAM)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key TEXT NOT NULL, body BLOB NOT NULL, meta TEXT NOT NULL, created REAL NOT NULL,"
    " boot TEXT, mono REAL, synced INTEGER NOT NULL DEFAULT 0)"
)
# columns added since the first release: a database written by it gets them, NULL (age unknown)
_ADDED = (("boot", "TEXT"), ("mono", "REAL"), ("synced", "INTEGER NOT NULL DEFAULT 0"))


def _setup(db: sqlite3.Connection) -> None:
    db.execute(_SCHEMA)
    have = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    for name, kind in _ADDED:
        if name not in have:
            db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")


class OutboxError(AgentError, OSError):
    """The outbox database cannot be opened or written, or the outbox is closed."""


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    key: str
    body: bytes
    meta: dict[str, Any]
    created: float  # wall time it was put (corrected once the clock is synchronised)


class Outbox:
    """Thread-safe; every method is one short transaction under one lock. Opens nothing until used."""

    def __init__(self, path: str | Path, cfg: StorageConfig | None = None, *,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic,
                 boot_id: Callable[[], str] = timebase.boot_id,
                 synchronised: Callable[[], bool] = timebase.system_synchronised) -> None:
        cfg = cfg or StorageConfig()
        self.path = Path(path)
        self.max_items = cfg.outbox_max_items
        self.max_bytes = int(cfg.outbox_max_mb * 1_000_000)
        self.max_age_s = cfg.outbox_max_age_s
        self._wall = wall
        self._mono = mono
        self._boot_id = boot_id
        self._synchronised = synchronised
        self._db: sqlite3.Connection | None = None
        self._storage = ""  # dbfile.DISK | dbfile.MEMORY once open
        self._storage_error: str | None = None
        self._moved_aside: Path | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.dropped = 0  # evicted by a bound (or dropped as unusable) since this process started

    def open(self) -> Outbox:
        """Create or open the database now; idempotent. A disk's trouble does not raise (see
        ``storage()``); OutboxError only once closed."""
        self._run(lambda db: None)
        return self

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")
        if self._db is None:
            opened = dbfile.open_db(self.path, _setup)
            self._db, self._storage, self._storage_error = opened.db, opened.storage, opened.error
            self._moved_aside = opened.moved_aside or self._moved_aside
            if opened.storage == dbfile.MEMORY:
                self.max_bytes = min(self.max_bytes, int(MEMORY_MAX_MB * 1_000_000))
        return self._db

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            db = self._conn()
            try:
                with db:  # one transaction, committed or rolled back
                    return fn(db)
            except sqlite3.Error as err:
                if self._storage != dbfile.DISK or not dbfile.is_damage(err):
                    raise OutboxError(f"outbox {self.path}: {err}") from err
                damage = err
            # damaged while in use: what it held is lost; the outbox goes on with a fresh file
            self._db = None
            db.close()
            try:
                self._moved_aside = dbfile.move_aside(self.path)
                logger.error("outbox %s is damaged (%s): moved aside to %s; starting a fresh one",
                             self.path, damage, self._moved_aside)
            except OSError as err:
                logger.error("outbox %s is damaged (%s) and cannot be moved aside: %s", self.path, damage, err)
            db = self._conn()
            try:
                with db:
                    return fn(db)
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: {err}") from err

    def storage(self) -> dict[str, Any]:
        """Where the items are kept: ``disk`` or ``memory`` (with the error that put them there), and
        where a damaged file was moved; ``storage`` is None until opened."""
        return {"storage": self._storage or None, "storage_error": self._storage_error,
                "moved_aside": str(self._moved_aside) if self._moved_aside else None}

    def put(self, key: str, body: bytes, meta: dict[str, Any] | None = None) -> int:
        """Append one item; returns its id. Drops the oldest items beyond the bounds."""

        def tx(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO outbox (key, body, meta, created, boot, mono, synced) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, body, json.dumps(meta or {}), self._wall(), self._boot_id(), self._mono(),
                 int(self._synchronised())))
            self._trim(db)
            return int(cur.lastrowid or 0)

        return self._run(tx)

    def _expire(self, db: sqlite3.Connection) -> int:
        """Drop rows older than the age bound; returns how many. Brings rows of earlier boots into
        this boot's monotonic time first, with their true age where it is known."""
        wall, mono, boot = self._wall(), self._mono(), self._boot_id()
        if self._synchronised():
            # stamped before the clock was synchronised in this boot: correct it from the monotonic age
            db.execute("UPDATE outbox SET created = ? - (? - mono), synced = 1 WHERE boot = ? AND synced = 0",
                       (wall, mono, boot))
            # from an earlier boot, stamped on a synchronised clock: its wall age is true
            db.execute("UPDATE outbox SET boot = ?, mono = ? - MAX(0.0, ? - created)"
                       " WHERE boot IS NOT ? AND synced = 1", (boot, mono, wall, boot))
        # an earlier boot with an unsynchronised stamp, or none: age unknown, counted from now;
        # synchronised stamps of an earlier boot wait (kept) until this boot's clock is synchronised
        db.execute("UPDATE outbox SET boot = ?, mono = ? WHERE boot IS NOT ? AND synced = 0", (boot, mono, boot))
        return int(db.execute("DELETE FROM outbox WHERE boot = ? AND mono < ?",
                              (boot, mono - self.max_age_s)).rowcount)

    def _trim(self, db: sqlite3.Connection) -> None:
        n = self._expire(db)
        count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox").fetchone()
        while count > self.max_items or total > self.max_bytes:
            row = db.execute("SELECT id, LENGTH(body) FROM outbox ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
            count, total, n = count - 1, total - row[1], n + 1
        if n:
            self.dropped += n
            logger.warning("outbox full or expired: dropped=%d oldest path=%s", n, self.path)

    def pending(self, limit: int = 1000, after_id: int = 0) -> list[Item]:
        """Oldest first, after dropping those past the age bound."""

        def tx(db: sqlite3.Connection) -> list[Item]:
            self._trim(db)
            rows = db.execute("SELECT id, key, body, meta, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                              (after_id, limit)).fetchall()
            return [Item(r[0], r[1], bytes(r[2]), json.loads(r[3]), r[4]) for r in rows]

        return self._run(tx)

    def delete(self, item_id: int) -> None:
        """Remove a delivered item; a missing id is not an error (delivery may be confirmed twice)."""
        self._run(lambda db: db.execute("DELETE FROM outbox WHERE id = ?", (item_id,)))

    def drop(self, item_id: int, why: str) -> None:
        """Remove an item that can never be delivered, counted in ``dropped``."""
        logger.warning("outbox: dropping id=%d (%s) path=%s", item_id, why, self.path)
        self.delete(item_id)
        with self._lock:
            self.dropped += 1

    def depth(self) -> int:
        return int(self._run(lambda db: db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]))

    def oldest_age_s(self) -> float | None:
        """Seconds the oldest item has waited in this boot's monotonic time; None when empty (or
        when only items of an earlier boot wait, of an age not known yet)."""
        boot = self._boot_id()
        oldest = self._run(lambda db: db.execute("SELECT MIN(mono) FROM outbox WHERE boot = ?", (boot,)).fetchone()[0])
        return None if oldest is None else max(0.0, self._mono() - oldest)

    def close(self) -> None:
        """Idempotent; any later call raises OutboxError."""
        with self._lock:
            self._closed = True
            db, self._db = self._db, None
            if db is not None:
                db.close()
