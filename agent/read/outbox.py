"""Durable outbox: crops that could not be read yet, kept in order across restarts (sqlite, WAL).

Bounded by count, bytes and age; the oldest go first and are counted. A crop leaves only when the
worker ``delete``s it after a successful read, so each parked crop is handed on exactly once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config import StorageConfig, state_dir
from ..errors import ReaderError
from ..types import Box, Detection, PlateCrop

logger = logging.getLogger(__name__)

FILENAME = "reader-outbox.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS crops (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queued_at REAL NOT NULL,   -- wall time it was parked
    wall_time REAL NOT NULL,   -- the frame's capture time
    size INTEGER NOT NULL,
    meta TEXT NOT NULL,        -- JSON: everything in PlateCrop but the JPEG
    jpeg BLOB NOT NULL
)
"""


class OutboxError(ReaderError, OSError):
    """The outbox database cannot be opened or written."""


def _meta(crop: PlateCrop) -> str:
    d = crop.detection
    return json.dumps(
        {
            "camera_id": crop.camera_id,
            "frame_seq": crop.frame_seq,
            "detection": [d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score, d.label],
            "region": [crop.region.x1, crop.region.y1, crop.region.x2, crop.region.y2],
            "sharpness": crop.sharpness,
            "quality": crop.quality,
        }
    )


def _crop(meta: str, wall_time: float, jpeg: bytes, mono_time: float) -> PlateCrop:
    m = json.loads(meta)
    d = m["detection"]
    return PlateCrop(
        camera_id=m["camera_id"],
        frame_seq=m["frame_seq"],
        wall_time=wall_time,
        mono_time=mono_time,
        detection=Detection(Box(*d[:4]), d[4], d[5]),
        region=Box(*m["region"]),
        jpeg=jpeg,
        sharpness=m["sharpness"],
        quality=m["quality"],
    )


class Outbox:
    """FIFO of crops on disk. Thread-safe; the reader worker is its only writer in the agent."""

    def __init__(
        self,
        path: str | Path,
        cfg: StorageConfig | None = None,
        *,
        max_items: int | None = None,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bounds from ``cfg`` (the outbox_* keys) unless given one by one; opens nothing yet."""
        cfg = cfg or StorageConfig()
        self.path = Path(path)
        self.max_items = max_items if max_items is not None else cfg.outbox_max_items
        self.max_bytes = max_bytes if max_bytes is not None else int(cfg.outbox_max_mb * 1_000_000)
        self.max_age_s = max_age_s if max_age_s is not None else cfg.outbox_max_age_s
        self._wall = wall
        self._mono = mono
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self.dropped = 0  # evicted by a bound since this process started

    @classmethod
    def from_config(cls, cfg: StorageConfig, environ: Mapping[str, str] | None = None) -> Outbox:
        return cls(state_dir(cfg, environ) / FILENAME, cfg)

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise OutboxError("outbox is closed")
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes
                db.execute(_SCHEMA)
                db.commit()
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: {err}") from err
            self._db = db
        return self._db

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            db = self._conn()
            try:
                with db:  # one transaction, committed or rolled back
                    return fn(db)
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: {err}") from err

    def open(self) -> None:
        """Create or open the database now (fail fast at startup); later calls are no-ops."""
        self._run(lambda db: None)

    def put(self, crop: PlateCrop) -> int:
        """Park a crop; returns how many old crops the bounds evicted to make room."""

        def tx(db: sqlite3.Connection) -> int:
            db.execute(
                "INSERT INTO crops (queued_at, wall_time, size, meta, jpeg) VALUES (?, ?, ?, ?, ?)",
                (self._wall(), crop.wall_time, len(crop.jpeg), _meta(crop), crop.jpeg),
            )
            return self._enforce(db)

        return int(self._run(tx))

    def _enforce(self, db: sqlite3.Connection) -> int:
        cutoff = self._wall() - self.max_age_s
        n = db.execute("DELETE FROM crops WHERE queued_at < ?", (cutoff,)).rowcount
        count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM crops").fetchone()
        while count > self.max_items or total > self.max_bytes:
            row = db.execute("SELECT id, size FROM crops ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            db.execute("DELETE FROM crops WHERE id = ?", (row[0],))
            count, total, n = count - 1, total - row[1], n + 1
        if n:
            self.dropped += n
            logger.warning("outbox full or expired: dropped=%d oldest crops", n)
        return n

    def peek(self) -> tuple[int, PlateCrop] | None:
        """The oldest crop and its id, without removing it; None when empty."""

        def tx(db: sqlite3.Connection) -> tuple[int, PlateCrop] | None:
            self._enforce(db)
            row = db.execute(
                "SELECT id, wall_time, meta, jpeg FROM crops ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            # monotonic time is per boot: rebuild it from the wall-clock age
            mono = self._mono() - max(0.0, self._wall() - row[1])
            try:
                return row[0], _crop(row[2], row[1], bytes(row[3]), mono)
            except (ValueError, KeyError, IndexError, TypeError):
                logger.warning("outbox: dropping unreadable entry id=%d", row[0])
                db.execute("DELETE FROM crops WHERE id = ?", (row[0],))
                self.dropped += 1
                return tx(db)

        result: tuple[int, PlateCrop] | None = self._run(tx)
        return result

    def delete(self, item_id: int) -> None:
        self._run(lambda db: db.execute("DELETE FROM crops WHERE id = ?", (item_id,)))

    def depth(self) -> int:
        return int(self._run(lambda db: db.execute("SELECT COUNT(*) FROM crops").fetchone()[0]))

    def oldest_age_s(self) -> float | None:
        row = self._run(lambda db: db.execute("SELECT MIN(queued_at) FROM crops").fetchone())
        return None if row[0] is None else max(0.0, self._wall() - row[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            db, self._db = self._db, None
            if db is not None:
                db.close()


__all__ = ["FILENAME", "Outbox", "OutboxError"]
