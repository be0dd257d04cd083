"""Access-rule entries as written: a plate with its cameras, validity dates and weekly schedule,
from the config (``[[rules.allow]]``) or the rules CSV file.

The config loader checks every entry with ``check_entry``; the rules parse the same entries with
the same functions, so an entry check-config accepts is one the running agent accepts.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .plates import MAX_CHARS, is_plate
from .schema import build, opt

_WINDOW = re.compile(r"(?:(?P<days>[A-Za-z,\- ]+?)\s+)?(?P<h1>\d{1,2}):(?P<m1>\d{2})-(?P<h2>\d{1,2}):(?P<m2>\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start_min: int
    end_min: int  # exclusive; end < start wraps past midnight

    def contains(self, when: dt.datetime) -> bool:
        m = when.hour * 60 + when.minute
        if self.start_min <= self.end_min:
            return when.weekday() in self.days and self.start_min <= m < self.end_min
        if m >= self.start_min:  # the evening part belongs to the day it starts on
            return when.weekday() in self.days
        return (when.weekday() - 1) % 7 in self.days and m < self.end_min


def _days(spec_text: str, part: str) -> set[int]:
    days: set[int] = set()
    for spec in filter(None, (s.strip().lower() for s in re.split(r"[, ]+", spec_text))):
        a, _, b = spec.partition("-")
        if a[:3] not in _DAYS or (b and b[:3] not in _DAYS):
            raise ValueError(f"bad weekday in {part!r} (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
        i, j = _DAYS.index(a[:3]), _DAYS.index((b or a)[:3])
        days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(j + 1)])
    return days


def parse_schedule(text: str) -> tuple[Window, ...]:
    """``"Mon-Fri 07:00-19:00; Sat 08:00-12:00"`` -> windows; ``""`` -> () (always).

    Raises ValueError naming the bad part. A start is 00:00..23:59, an end 00:01..24:00; an end
    before the start wraps past midnight.
    """
    windows = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        m = _WINDOW.fullmatch(part)
        if not m:
            raise ValueError(f"bad schedule {part!r} (expected e.g. 'Mon-Fri 07:00-19:00')")
        days = _days(m["days"] or "mon-sun", part)
        h1, m1, h2, m2 = (int(m[k]) for k in ("h1", "m1", "h2", "m2"))
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= 24 * 60 or end > 24 * 60:
            raise ValueError(f"bad time in {part!r} (00:00 to 24:00)")
        if start == end:
            raise ValueError(f"empty window in {part!r}: start and end are the same")
        windows.append(Window(frozenset(days), start, end))
    return tuple(windows)


def parse_when(text: str, end: bool) -> float | None:
    """A local date or date-time -> epoch seconds; ``""`` -> None (no limit).

    ``end``: a bare date covers that whole day, so the limit is the next midnight (exclusive).
    Raises ValueError for anything else, impossible dates (2024-02-30) included.
    """
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM)")
    try:
        when = dt.datetime.fromisoformat(text.replace(" ", "T"))
        if end and len(text) == 10:
            when += dt.timedelta(days=1)
        return when.timestamp()  # naive -> local time
    except (ValueError, OverflowError, OSError) as err:
        raise ValueError(f"bad date {text!r}: {err}") from err


# ---------------------------------------------------------------- entries

CSV_COLUMNS = ("plate", "label", "list", "valid_from", "valid_until", "schedule", "cameras")


@dataclass(frozen=True)
class RuleEntry:
    plate: str = opt()  # 1 to 16 letters or digits; spaces, dashes, dots, underscores between them
    label: str = opt("")
    cameras: list[str] = opt(factory=list)  # [] = every camera
    valid_from: str = opt("")  # local date or date-time; "" = always
    valid_until: str = opt("")  # inclusive; a bare date covers the whole day
    schedule: str = opt("")  # "Mon-Fri 07:00-19:00; Sat 08:00-12:00", local time


def check_entry(e: RuleEntry, path: str, errors: list[str]) -> None:
    """The checks of one entry that its keys' bounds cannot express; ``path`` ends with a dot."""
    if not is_plate(e.plate):
        errors.append(f"{path}plate: must be 1 to {MAX_CHARS} letters or digits (spaces, dashes, dots"
                      f" or underscores between them), not {e.plate!r}")
    try:
        parse_schedule(e.schedule)
    except ValueError as err:
        errors.append(f"{path}schedule: {err}")
    limits: list[float | None] = []
    for key, end in (("valid_from", False), ("valid_until", True)):
        try:
            limits.append(parse_when(getattr(e, key), end))
        except ValueError as err:
            errors.append(f"{path}{key}: {err}")
            limits.append(None)
    start, stop = limits
    if start is not None and stop is not None and stop <= start:
        errors.append(f"{path}valid_until: must be after valid_from ({e.valid_from})")


def read_rules_file(path: Path) -> list[tuple[str, RuleEntry, int]]:
    """The rules CSV as (list, entry, line number); raises ConfigError listing every bad row.

    Columns: plate,label,list,valid_from,valid_until,schedule,cameras (only plate is required;
    list is allow or deny, default allow; cameras are separated by spaces, ``;``, ``|`` or ``,``).
    A header line and ``#`` lines are skipped. Each row is checked like a ``[[rules.allow]]`` entry.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"rules.file: cannot read {path}: {err}") from err
    rows: list[tuple[str, RuleEntry, int]] = []
    errors: list[str] = []
    reader = csv.reader(lines)
    try:
        for row in reader:
            lineno = reader.line_num  # the row's last line: a quoted cell may span lines
            where = f"rules.file: {path}:{lineno}: "
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#") or (lineno == 1 and cells[0].lower() == "plate"):
                continue
            cells += [""] * (len(CSV_COLUMNS) - len(cells))
            entry, list_ = row_entry(dict(zip(CSV_COLUMNS, cells, strict=False)), where, errors)
            if entry is not None:
                rows.append((list_, entry, lineno))
    except csv.Error as err:
        errors.append(f"rules.file: {path}: not CSV: {err}")
    if errors:
        raise ConfigError(errors)
    return rows


def row_entry(row: dict[str, str], where: str, errors: list[str]) -> tuple[RuleEntry | None, str]:
    """One CSV row (cells by column name) -> (entry, list); each problem goes to ``errors`` after ``where``."""
    row = dict(row)
    list_ = row.pop("list", "").lower() or "allow"
    if list_ not in ("allow", "deny"):
        errors.append(f"{where}list: must be allow or deny, not {list_!r}")
        return None, list_
    table: dict[str, Any] = {**row, "cameras": [c for c in re.split(r"[\s;|,]+", row.get("cameras", "")) if c]}
    found: list[str] = []
    entry = build(RuleEntry, table, "", found, lambda e, p, errs: check_entry(e, f"{p}." if p else "", errs))
    errors.extend(where + e for e in found)
    return (entry if not found else None), list_


def csv_cells(list_: str, e: RuleEntry) -> list[str]:
    """The CSV row ``read_rules_file`` reads back as (``list_``, ``e``)."""
    return [e.plate, e.label, list_, e.valid_from, e.valid_until, e.schedule, " ".join(e.cameras)]


__all__ = [
    "CSV_COLUMNS",
    "RuleEntry",
    "Window",
    "check_entry",
    "csv_cells",
    "parse_schedule",
    "parse_when",
    "read_rules_file",
    "row_entry",
]
