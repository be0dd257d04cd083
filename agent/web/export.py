"""The events of a filter as CSV (the console's export): every matching event, newest first, up to
``MAX_ROWS``. Cells that a spreadsheet would run as a formula are quoted with a leading ``'``: plate
text and labels come from outside.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any

from ..history import EventStore
from ..history import query as q

MAX_ROWS = 10_000  # a few MB of text at most
COLUMNS = ("decided_at", "camera_id", "plate", "type", "action", "rule", "reason", "direction", "score",
           "paid_calls", "event_id", "pass_id")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def events_csv(store: EventStore, f: q.Filter) -> bytes:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(COLUMNS)
    page = dataclasses.replace(f, before=0, limit=q.MAX_PAGE)
    rows = 0
    while rows < MAX_ROWS:
        doc = q.events(store, page)
        for e in doc["events"]:
            e = {**e, "score": e["read"]["score"]}
            out.writerow([_cell(e.get(c)) for c in COLUMNS])
        rows += len(doc["events"])
        if doc["next"] is None:
            break
        page = dataclasses.replace(page, before=doc["next"])
    return buf.getvalue().encode()


__all__ = ["MAX_ROWS", "events_csv"]
