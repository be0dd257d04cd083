"""The event store: every event (a Sink, served after the relay) and every paid read, in sqlite (WAL)
in the state directory, with the event's crop. Written on its own ``history`` thread through a
bounded queue that drops and counts when full, so the store never slows the gate.

A disk quota (MB and days, oldest first) is enforced as it writes. A bad disk never stops the agent
(``dbfile``): a damaged file is moved aside, an unwritable one is replaced by a small store in memory.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import dbfile, timebase
from ..config import HistoryConfig
from ..types import Decision, PlateCrop, PlateRead
from .frames import FrameShelf

logger = logging.getLogger(__name__)

T = TypeVar("T")

FILENAME = "history.sqlite3"
MEMORY_MAX_MB = 10.0  # a store that fell back to memory holds at most this (a Pi has little RAM)
BATCH = 64  # queued items written in one transaction
CLOSE_S = 2.0  # what is queued is written within this at close (the shutdown stays inside 5 s)
DAY_S = 86400.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,"
    " pass_id TEXT NOT NULL, kind TEXT NOT NULL, camera_id TEXT NOT NULL, plate TEXT NOT NULL,"
    " score REAL NOT NULL, dscore REAL NOT NULL, candidates TEXT NOT NULL, action TEXT NOT NULL,"
    " rule TEXT NOT NULL, reason TEXT NOT NULL, direction TEXT NOT NULL, late INTEGER NOT NULL,"
    " decided_at REAL NOT NULL, captured_at REAL NOT NULL, run TEXT NOT NULL, track_id INTEGER NOT NULL,"
    " box TEXT NOT NULL, vehicle TEXT, bytes INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_time ON events (decided_at)",
    "CREATE INDEX IF NOT EXISTS events_plate ON events (plate, decided_at)",
    "CREATE INDEX IF NOT EXISTS events_camera ON events (camera_id, decided_at)",
    "CREATE TABLE IF NOT EXISTS images (event INTEGER NOT NULL, kind TEXT NOT NULL, jpeg BLOB NOT NULL,"
    " PRIMARY KEY (event, kind)) WITHOUT ROWID",
    # run: one per process; a pass's paid reads are those of its camera's track in the same run
    "CREATE TABLE IF NOT EXISTS reads (id INTEGER PRIMARY KEY AUTOINCREMENT, camera_id TEXT NOT NULL,"
    " run TEXT NOT NULL, track_id INTEGER NOT NULL, frame_seq INTEGER NOT NULL, captured_at REAL NOT NULL,"
    " read_at REAL NOT NULL, plates TEXT NOT NULL, bytes INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reads_time ON reads (read_at)",
    "CREATE INDEX IF NOT EXISTS reads_track ON reads (run, camera_id, track_id)",
)


def _setup(db: sqlite3.Connection) -> None:
    for stmt in _SCHEMA:
        db.execute(stmt)
    # the WAL file is cut back to this after each checkpoint: the quota holds for the files on disk
    db.execute("PRAGMA journal_size_limit=1048576")


@dataclass(frozen=True, slots=True)
class _Paid:
    """One paid read: a crop the reader uploaded and got an answer for."""

    crop: PlateCrop
    plates: tuple[str, ...]
    read_at: float


class EventStore:
    """``send`` (the Sink) and ``paid`` never block; ``run`` on the ``history`` thread writes.

    The queries (``history.query``) go through ``read``: one connection, one lock, short statements.
    """

    def __init__(self, cfg: HistoryConfig, path: Path, *, wall: Callable[[], float] = time.time,
                 synchronised: Callable[[], bool] = timebase.system_synchronised,
                 frames: FrameShelf | None = None) -> None:
        self.cfg = cfg
        self.frames = frames  # where the full frames of uploads wait (save_frames)
        self.path = path
        self.max_bytes = int(cfg.quota_mb * 1_000_000)
        self._wall = wall
        self._synchronised = synchronised
        self._q: queue.Queue[Decision | _Paid | None] = queue.Queue(maxsize=cfg.queue_size)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._opened: dbfile.Opened | None = None
        self._total = 0  # bytes of every row, kept in step with the database
        self._run = uuid.uuid4().hex[:12]  # track ids start again in each process
        self._closed = False
        self._thread: threading.Thread | None = None
        self.counters: Counter[str] = Counter()

    # ------------------------------------------------------------ any thread

    def send(self, decision: Decision) -> None:
        """The Sink: queue the event; a full queue drops it and counts."""
        self._put(decision, "dropped_events")

    def paid(self, crop: PlateCrop, reads: Sequence[PlateRead] | None) -> None:
        """The reader answered ``crop`` (None: it did not, nothing was paid)."""
        if reads is not None:
            self._put(_Paid(crop, tuple(r.plate for r in reads), self._wall()), "dropped_reads")

    def _put(self, item: Decision | _Paid, counter: str) -> None:
        if self._closed:
            return
        try:
            self._q.put_nowait(item)
        except queue.Full:
            self.counters[counter] += 1
            logger.warning("history queue full, %s", counter.replace("_", " "))

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a query under the store's lock (the HTTP threads)."""
        with self._lock:
            return fn(self._conn())

    # ------------------------------------------------------------ lifecycle

    def open(self) -> EventStore:
        """Open (or create) the database now; a disk's trouble does not raise (see ``stats``)."""
        with self._lock:
            self._conn()
        return self

    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self.run, name="history", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def run(self) -> None:
        """Write what comes until ``close``; one catch-all per batch."""
        while True:
            item = self._q.get()
            batch = [item]
            while len(batch) < BATCH:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            items = [b for b in batch if b is not None]
            if items:
                try:
                    self.write(items)
                except Exception:
                    self.counters["errors"] += len(items)
                    logger.exception("history write failed items=%d", len(items))
            if len(items) < len(batch):
                return

    def close(self) -> None:
        """Write what is queued, stop the thread, close the database; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(CLOSE_S)
            self._thread = None
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    # ------------------------------------------------------------ writing (the history thread)

    def write(self, items: Sequence[Decision | _Paid]) -> None:
        """Write ``items`` in one transaction, then trim to the quota."""
        with self._lock:
            db = self._conn()
            try:
                with db:
                    for item in items:
                        if isinstance(item, _Paid):
                            self._write_paid(db, item)
                        else:
                            self._write_event(db, item)
                    self._trim(db)
            except sqlite3.Error as err:
                self._damaged(err)
                raise

    def _write_paid(self, db: sqlite3.Connection, p: _Paid) -> None:
        plates = json.dumps(p.plates)
        size = len(plates) + 64
        db.execute("INSERT INTO reads (camera_id, run, track_id, frame_seq, captured_at, read_at, plates, bytes)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (p.crop.camera_id, self._run, p.crop.track_id,
                                                       p.crop.frame_seq, p.crop.wall_time, p.read_at, plates, size))
        self._total += size
        self.counters["reads"] += 1

    def _write_event(self, db: sqlite3.Connection, d: Decision) -> None:
        r = d.read
        crop = r.crop
        track = crop.track_id if crop is not None else 0
        cands = json.dumps([{"plate": c.plate, "score": round(c.score, 3)} for c in r.candidates])
        vehicle = None
        if r.vehicle is not None:
            v = r.vehicle
            vehicle = json.dumps({"type": v.type, "score": round(v.score, 3), "make": v.make, "model": v.model,
                                  "color": v.color, "orientation": v.orientation})
        jpeg = crop.jpeg if crop is not None and crop.jpeg else b""
        frame = self.frames.take(crop.camera_id, crop.frame_seq) if self.frames is not None and crop else None
        text = (d.reason, d.rule, cands, vehicle or "")
        size = 256 + sum(len(t) for t in text) + len(jpeg) + len(frame or b"")
        cur = db.execute(
            "INSERT OR IGNORE INTO events (event_id, pass_id, kind, camera_id, plate, score, dscore, candidates,"
            " action, rule, reason, direction, late, decided_at, captured_at, run, track_id, box, vehicle, bytes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.event_id, d.pass_id, d.kind, d.camera_id, d.plate, r.score, r.dscore, cands, d.action, d.rule,
             d.reason, d.direction, int(d.late), d.decided_at, r.wall_time, self._run, track,
             json.dumps(r.box.as_dict()), vehicle, size))
        if not cur.rowcount:
            return  # the same event twice (a replay): kept once
        for kind, image in (("crop", jpeg), ("frame", frame)):
            if image:
                db.execute("INSERT INTO images (event, kind, jpeg) VALUES (?, ?, ?)", (cur.lastrowid, kind, image))
        self._total += size
        self.counters["events"] += 1

    def _trim(self, db: sqlite3.Connection) -> None:
        """Oldest first: events past ``max_days`` (on a synchronised clock), then rows past the quota."""
        n = 0
        if self._synchronised():
            cutoff = self._wall() - self.cfg.max_days * DAY_S
            n += self._delete_events(db, "decided_at < ?", (cutoff,))
            self._total -= int(db.execute("SELECT COALESCE(SUM(bytes), 0) FROM reads WHERE read_at < ?",
                                          (cutoff,)).fetchone()[0])
            n += db.execute("DELETE FROM reads WHERE read_at < ?", (cutoff,)).rowcount
        while self._total > self.max_bytes:
            ev = db.execute("SELECT decided_at FROM events ORDER BY id LIMIT 1").fetchone()
            rd = db.execute("SELECT id, read_at, bytes FROM reads ORDER BY id LIMIT 1").fetchone()
            if ev is None and rd is None:
                self._total = 0
                break
            if rd is not None and (ev is None or rd[1] < ev[0]):
                db.execute("DELETE FROM reads WHERE id = ?", (rd[0],))
                self._total -= rd[2]
                n += 1
            else:
                n += self._delete_events(db, "id = (SELECT MIN(id) FROM events)", ())
        if n:
            self.counters["evicted"] += n

    def _delete_events(self, db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> int:
        rows = db.execute(f"SELECT id, bytes FROM events WHERE {where}", args).fetchall()  # noqa: S608
        if not rows:
            return 0
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            db.execute(f"DELETE FROM images WHERE event IN ({marks})", chunk)  # noqa: S608
            db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)  # noqa: S608
        self._total -= sum(r[1] for r in rows)
        return len(rows)

    # ------------------------------------------------------------ the database

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self._closed:
                raise sqlite3.ProgrammingError("history store is closed")
            opened = dbfile.open_db(self.path, _setup, self._wall)
            if opened.storage == dbfile.MEMORY:
                self.max_bytes = min(self.max_bytes, int(MEMORY_MAX_MB * 1_000_000))
            self._opened, self._db = opened, opened.db
            self._total = int(opened.db.execute(
                "SELECT (SELECT COALESCE(SUM(bytes), 0) FROM events) + (SELECT COALESCE(SUM(bytes), 0) FROM reads)"
            ).fetchone()[0])
        return self._db

    def _damaged(self, err: sqlite3.Error) -> None:
        """Damaged while in use: moved aside; the next write starts a fresh file (what it held is lost)."""
        if self._opened is None or self._opened.storage != dbfile.DISK or not dbfile.is_damage(err):
            return
        db, self._db = self._db, None
        if db is not None:
            db.close()
        try:
            moved = dbfile.move_aside(self.path, self._wall)
            logger.error("history %s is damaged (%s): moved aside to %s; starting a fresh one", self.path, err, moved)
        except OSError as move_err:
            logger.error("history %s is damaged (%s) and cannot be moved aside: %s", self.path, err, move_err)

    def stats(self) -> dict[str, Any]:
        opened = self._opened
        return {
            **self.counters,
            "queued": self._q.qsize(),
            "bytes": self._total,
            "quota_bytes": self.max_bytes,
            "storage": opened.storage if opened else None,
            "storage_error": opened.error if opened else None,
            "moved_aside": str(opened.moved_aside) if opened and opened.moved_aside else None,
        }


__all__ = ["FILENAME", "EventStore"]
