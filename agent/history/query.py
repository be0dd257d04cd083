"""Reading the event store: events by filter (plate, camera, dates, action, kind) a bounded page at a
time, one event and its crop, a plate's history, paid reads per day. Answers are JSON-ready dicts in
the shape of the event document (``events.decision_payload``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from ..events import iso
from ..plates import normalize
from ..rulebook import parse_when
from .store import EventStore

MAX_PAGE = 100
DEFAULT_PAGE = 50
MAX_DAYS = 366
EVENT_ID = re.compile(r"[0-9a-f]{32}")
ACTIONS = ("open", "deny", "none")
KINDS = ("new", "update", "unread")
IMAGES = ("crop", "frame")
# paid calls of the pass: the uploads of its camera's track in the same run (a pass spans no restart)
_COLUMNS = ("id, event_id, pass_id, kind, camera_id, plate, score, dscore, candidates, action, rule, reason,"
            " direction, late, decided_at, captured_at,"
            " (SELECT COUNT(*) FROM reads WHERE reads.run = events.run AND reads.camera_id = events.camera_id"
            "  AND reads.track_id = events.track_id AND events.track_id != 0),"
            " box, vehicle,"
            " EXISTS (SELECT 1 FROM images WHERE images.event = events.id AND images.kind = 'crop'),"
            " EXISTS (SELECT 1 FROM images WHERE images.event = events.id AND images.kind = 'frame')")


class QueryError(ValueError):
    """A filter or page that cannot be answered; the message names the parameter."""


@dataclass(frozen=True)
class Filter:
    plate: str = ""  # normalised text the plate contains
    camera: str = ""
    since: float | None = None  # wall time, inclusive
    until: float | None = None  # exclusive
    action: str = ""
    kind: str = ""
    before: int = 0  # paging: events older than this cursor (0 = from the newest)
    limit: int = DEFAULT_PAGE

    @classmethod
    def parse(cls, q: dict[str, str]) -> Filter:
        """From query parameters: plate, camera, from, to (local date or date-time, ``to`` inclusive),
        action, kind (or unread=1), before (the page cursor), limit (1..100)."""
        plate = normalize(q.get("plate", ""))
        action, kind = q.get("action", ""), q.get("kind", "")
        if q.get("unread", "") in ("1", "true", "yes"):
            kind = "unread"
        if action and action not in ACTIONS:
            raise QueryError(f"action: must be one of {', '.join(ACTIONS)}")
        if kind and kind not in KINDS:
            raise QueryError(f"kind: must be one of {', '.join(KINDS)}")
        try:
            since, until = parse_when(q.get("from", ""), False), parse_when(q.get("to", ""), True)
        except ValueError as err:
            raise QueryError(f"from/to: {err}") from err
        return cls(plate, q.get("camera", ""), since, until, action, kind,
                   _int(q, "before", 0, 0, 2**62), _int(q, "limit", DEFAULT_PAGE, 1, MAX_PAGE))


def _int(q: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    text = q.get(key, "")
    if not text:
        return default
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise QueryError(f"{key}: must be a whole number from {lo} to {hi}")
    return int(text)


def _event(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    (rid, event_id, pass_id, kind, camera, plate, score, dscore, cands, action, rule, reason, direction,
     late, decided, captured, paid, box, vehicle, has_crop, has_frame) = row
    read: dict[str, Any] = {"plate": plate, "score": round(score, 3), "dscore": round(dscore, 3),
                            "box": json.loads(box), "candidates": json.loads(cands), "captured_at": iso(captured)}
    if vehicle:
        read["vehicle"] = json.loads(vehicle)
    return {"id": rid, "event_id": event_id, "pass_id": pass_id, "type": kind, "camera_id": camera,
            "plate": plate, "action": action, "rule": rule, "reason": reason, "late": bool(late),
            "direction": direction, "decided_at": iso(decided), "paid_calls": paid, "read": read,
            "crop": f"/api/events/{event_id}/crop" if has_crop else None,
            "frame": f"/api/events/{event_id}/frame" if has_frame else None}


def events(store: EventStore, f: Filter) -> dict[str, Any]:
    """One page, newest first; ``next`` is the ``before`` of the next page (None: this is the last)."""
    where: list[str] = ["1"]
    args: list[Any] = []
    for cond, value in (("instr(plate, ?) > 0", f.plate), ("camera_id = ?", f.camera), ("action = ?", f.action),
                        ("kind = ?", f.kind)):
        if value:
            where.append(cond)
            args.append(value)
    for cond, t in (("decided_at >= ?", f.since), ("decided_at < ?", f.until)):
        if t is not None:
            where.append(cond)
            args.append(t)
    if f.before:
        where.append("id < ?")
        args.append(f.before)
    sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"  # noqa: S608
    rows = store.read(lambda db: db.execute(sql, (*args, f.limit + 1)).fetchall())
    page = [_event(r) for r in rows[: f.limit]]
    return {"events": page, "next": page[-1]["id"] if len(rows) > f.limit else None}


def event(store: EventStore, event_id: str) -> dict[str, Any] | None:
    if not EVENT_ID.fullmatch(event_id):
        return None
    row = store.read(lambda db: db.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?",  # noqa: S608
                                           (event_id,)).fetchone())
    return _event(row) if row else None


def image(store: EventStore, event_id: str, kind: str = "crop") -> bytes | None:
    """The event's crop or frame JPEG; None for an id of the wrong shape or without one (ids only: no paths)."""
    if not EVENT_ID.fullmatch(event_id) or kind not in IMAGES:
        return None
    row = store.read(lambda db: db.execute(
        "SELECT jpeg FROM images JOIN events ON images.event = events.id WHERE events.event_id = ? AND images.kind = ?",
        (event_id, kind)).fetchone())
    return bytes(row[0]) if row else None


def plate_history(store: EventStore, plate: str, limit: int = DEFAULT_PAGE) -> dict[str, Any]:
    """Every stored event of exactly this (normalised) plate, newest first, with a summary."""
    norm = normalize(plate)

    def q(db: sqlite3.Connection) -> tuple[Any, list[Any], list[Any]]:
        summary = db.execute("SELECT COUNT(*), MIN(decided_at), MAX(decided_at) FROM events WHERE plate = ?",
                             (norm,)).fetchone()
        actions = db.execute("SELECT action, COUNT(*) FROM events WHERE plate = ? GROUP BY action", (norm,)).fetchall()
        rows = db.execute(f"SELECT {_COLUMNS} FROM events WHERE plate = ? ORDER BY id DESC LIMIT ?",  # noqa: S608
                          (norm, min(limit, MAX_PAGE))).fetchall()
        return summary, actions, rows

    (count, first, last), actions, rows = store.read(q)
    return {"plate": norm, "events_total": count, "first_seen": iso(first) if first else None,
            "last_seen": iso(last) if last else None, "actions": dict(actions), "events": [_event(r) for r in rows]}


def paid_per_day(store: EventStore, days: int = 30) -> list[dict[str, Any]]:
    """Paid reads per UTC day, the last ``days`` days that have any, oldest first."""
    days = max(1, min(days, MAX_DAYS))
    rows = store.read(lambda db: db.execute(
        "SELECT date(read_at, 'unixepoch') AS day, COUNT(*) FROM reads GROUP BY day ORDER BY day DESC LIMIT ?",
        (days,)).fetchall())
    return [{"day": day, "paid": n} for day, n in reversed(rows)]


__all__ = ["MAX_PAGE", "Filter", "QueryError", "event", "events", "image", "paid_per_day", "plate_history"]
