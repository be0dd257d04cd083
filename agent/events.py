"""The event document every output shares (MQTT payload, webhook data, demo JSON lines)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from typing import Any, TextIO

from .types import Decision, PlateRead


def iso(wall: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T13:09:15.123Z."""
    t = dt.datetime.fromtimestamp(wall, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def read_payload(read: PlateRead) -> dict[str, Any]:
    out: dict[str, Any] = {
        "plate": read.plate,
        "score": round(read.score, 3),
        "dscore": round(read.dscore, 3),
        "box": read.box.as_dict(),
        "region": {"code": read.region, "score": round(read.region_score, 3)},
        "candidates": [{"plate": c.plate, "score": round(c.score, 3)} for c in read.candidates],
        "captured_at": iso(read.wall_time),
    }
    if read.vehicle is not None:
        v = read.vehicle
        out["vehicle"] = {
            "type": v.type,
            "score": round(v.score, 3),
            "box": v.box.as_dict() if v.box else None,
            **{k: getattr(v, k) for k in ("make", "model", "color", "orientation") if getattr(v, k)},
        }
    return out


def decision_payload(d: Decision) -> dict[str, Any]:
    return {
        "event_id": d.event_id,
        "pass_id": d.pass_id,
        "type": d.kind,
        "camera_id": d.camera_id,
        "plate": d.plate,
        "action": d.action,
        "rule": d.rule,
        "reason": d.reason,
        "late": d.late,
        "direction": d.direction,
        "decided_at": iso(d.decided_at),
        "read": read_payload(d.read),
    }


class JsonLinesSink:
    """Prints one JSON line per event (``plate-agent demo`` and ``run --print-events``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def send(self, decision: Decision) -> None:
        line = json.dumps(decision_payload(decision), separators=(",", ":"))
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass
