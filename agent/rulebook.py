"""Access-rule entries as written: a plate with its cameras, validity dates and weekly schedule,
from the config (``[[rules.allow]]``) or the rules CSV file.

The config loader checks every entry with ``check_entry``; the rules parse the same entries with
the same functions, so an entry check-config accepts is one the running agent accepts.
"""

from __future__ import annotations

import codecs
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


@dataclass(frozen=True)
class RulesRead:
    """What the rules CSV holds: its good rows, and one problem per bad row (line, message)."""

    rows: list[tuple[str, RuleEntry, int]]  # (list, entry, line number)
    problems: list[tuple[int, str]]


def read_rules_file(path: Path) -> RulesRead:
    """The rules CSV: its good rows, and its bad rows as problems naming their line (left out; a
    deny row whose plate is good is kept as a deny for every camera at all times: fail closed).

    Columns: plate,label,list,valid_from,valid_until,schedule,cameras (only plate is required;
    list is allow or deny, default allow; cameras are separated by spaces, ``;``, ``|`` or ``,``).
    A header line (``plate`` first; when it names only these columns, they may come in any order)
    and ``#`` lines are skipped. Each row is checked like a ``[[rules.allow]]`` entry.
    Spreadsheet exports work: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252; the
    delimiter is the one after ``plate`` in the header, else the first of ``,`` ``;`` tab in the
    first row. Raises ConfigError when the file cannot be read, or has bad rows and no good one.
    """
    try:
        text = decode_text(path.read_bytes())
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"rules.file: cannot read {path}: {err}") from err
    layout = csv_layout(text.splitlines(), path)
    rows: list[tuple[str, RuleEntry, int]] = []
    problems: list[tuple[int, str]] = []
    for raw in layout.rows:
        found: list[str] = []
        where = f"rules.file: {path}:{raw.last}: "
        if raw.cells is None:
            problems.append((raw.last, f"{where}{raw.count} cells, the header names {len(layout.columns)};"
                                       " row left out"))
            continue
        cols = raw.cells
        entry, list_ = row_entry(cols, "", found)
        outcome = "row left out"
        if found and list_ == "deny" and is_plate(cols["plate"]):  # a ban is never lost to a typo in its dates
            entry, outcome = RuleEntry(plate=cols["plate"], label=cols["label"]), \
                "kept as a deny for every camera, at all times"
        problems.extend((raw.last, f"{where}{e}; {outcome}") for e in found)
        if entry is not None:
            rows.append((list_, entry, raw.last))
    if problems and not rows:
        raise ConfigError([m for _, m in problems] + [f"rules.file: {path}: no usable row"])
    return RulesRead(rows, problems)


@dataclass(frozen=True)
class RawRow:
    first: int  # its lines, 1-based: a quoted cell may span several
    last: int
    cells: dict[str, str] | None  # by column name, stripped; None: more cells than the header names
    count: int = 0  # cells in the row


@dataclass(frozen=True)
class CsvLayout:
    """How a rules file is written: its delimiter, its columns in order, and its rows (comments,
    blank lines and the header are not rows). The loader reads it; the API's edits write by it."""

    delimiter: str
    columns: tuple[str, ...]
    rows: list[RawRow]


def csv_layout(lines: list[str], path: Path | str = "") -> CsvLayout:
    """The layout of a rules file's lines; raises ConfigError when they are not CSV."""
    delim = delimiter(lines)
    reader = csv.reader(lines, delimiter=delim)
    columns: tuple[str, ...] = CSV_COLUMNS
    rows: list[RawRow] = []
    first, start = True, 1
    try:
        for row in reader:
            begin, start = start, reader.line_num + 1
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if first and cells[0].lower() == "plate":
                first = False
                names = tuple(c.lower() for c in cells)
                if set(names) <= set(CSV_COLUMNS) and len(set(names)) == len(names) \
                        and names != CSV_COLUMNS[:len(names)]:
                    columns = names  # known names in another order
                continue
            first = False
            if columns is not CSV_COLUMNS and any(cells[len(columns):]):
                rows.append(RawRow(begin, reader.line_num, None, len(cells)))
                continue
            rows.append(RawRow(begin, reader.line_num,
                               dict.fromkeys(CSV_COLUMNS, "") | dict(zip(columns, cells, strict=False)), len(cells)))
    except csv.Error as err:
        raise ConfigError(f"rules.file: {path}: not CSV: {err}") from err
    return CsvLayout(delim, columns, rows)


def decode_text(data: bytes) -> str:
    """A rules file's bytes as text: UTF-8 or UTF-16 by their BOM, else UTF-8, else Windows-1252."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(codec)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # 5 bytes cp1252 leaves undefined: shown as such


def delimiter(lines: list[str]) -> str:
    """The cell delimiter: the one after ``plate`` in a header, else the first of , ; tab in the first row."""
    for line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s[:5].lower() == "plate" and s[5:6] in (",", ";", "\t"):
            return s[5]
        return next((d for d in (",", ";", "\t") if d in s), ",")
    return ","


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
    "RulesRead",
    "Window",
    "check_entry",
    "CsvLayout",
    "RawRow",
    "csv_cells",
    "csv_layout",
    "decode_text",
    "delimiter",
    "parse_schedule",
    "parse_when",
    "read_rules_file",
    "row_entry",
]
