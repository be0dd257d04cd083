"""Editing the rules CSV from the JSON API: add, edit, remove one row. Each write checks the row as
the loader does (``rulebook.row_entry``), then the whole new file (``read_rules_file``), writes it
atomically (temporary file, fsync, rename, fsync of the folder) and has the rules reload at once.

Comments, the header and every other row are kept as they are. A row is named by a hash of its
text: an edit of a row someone else changed meanwhile finds nothing (409) instead of the wrong row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .rulebook import CSV_COLUMNS, RuleEntry, csv_cells, csv_layout, decode_text, read_rules_file, row_entry

logger = logging.getLogger(__name__)

HEADER = ",".join(CSV_COLUMNS) + "\n"
FIELDS = ("list", "plate", "label", "valid_from", "valid_until", "schedule", "cameras")


class RuleEditError(ValueError):
    """A write that was refused; ``status`` is the HTTP answer (400 bad entry, 404/409 no such row)."""

    def __init__(self, message: str, status: int = 400, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or [message]


@dataclass(frozen=True)
class Row:
    id: str
    list: str
    entry: RuleEntry
    first: int  # its lines in the file, 0-based, [first, end)
    end: int

    def doc(self) -> dict[str, Any]:
        e = self.entry
        return {"id": self.id, "list": self.list, "plate": e.plate, "label": e.label, "cameras": list(e.cameras),
                "valid_from": e.valid_from, "valid_until": e.valid_until, "schedule": e.schedule,
                "source": "file", "line": self.first + 1}


def _rows(lines: list[str]) -> list[Row]:
    """The good rule rows of the file's lines, read as the loader reads them (delimiter, columns)."""
    out: list[Row] = []
    for raw in csv_layout(lines).rows:
        entry, list_ = row_entry(raw.cells, "", []) if raw.cells is not None else (None, "")
        if entry is not None:
            text = "".join(lines[raw.first - 1:raw.last])
            out.append(Row(hashlib.sha256(text.encode()).hexdigest()[:16], list_, entry, raw.first - 1, raw.last))
    return out


def parse_body(body: Any) -> tuple[str, RuleEntry]:
    """A rule as the API sends it (JSON) -> (list, entry), checked as the loader checks a CSV row."""
    if not isinstance(body, dict):
        raise RuleEditError("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RuleEditError(f"{unknown[0]}: unknown key (known: {', '.join(FIELDS)})")
    cells: dict[str, str] = {}
    for key in FIELDS:
        value = body.get(key, "")
        if key == "cameras" and isinstance(value, list) and all(isinstance(c, str) for c in value):
            value = " ".join(value)
        if not isinstance(value, str):
            raise RuleEditError(f"{key}: must be a string" + (" or a list of strings" if key == "cameras" else ""))
        if "\n" in value or "\r" in value:
            raise RuleEditError(f"{key}: must be one line")
        cells[key] = value.strip()
    errors: list[str] = []
    entry, list_ = row_entry(cells, "", errors)
    if entry is None:
        raise RuleEditError(errors[0] if errors else "bad rule", errors=errors)
    return list_, entry


def _line(list_: str, entry: RuleEntry, lines: list[str]) -> str:
    """The row in the file's own delimiter and column order; RuleEditError for a value its header
    has no column for."""
    layout = csv_layout(lines)
    cells = dict(zip(CSV_COLUMNS, csv_cells(list_, entry), strict=True))
    missing = [c for c in CSV_COLUMNS if cells[c] and c not in layout.columns]
    if missing:
        raise RuleEditError(f"{missing[0]}: the rules file's header has no such column")
    buf = io.StringIO()
    csv.writer(buf, delimiter=layout.delimiter, lineterminator="\n").writerow([cells[c] for c in layout.columns])
    return buf.getvalue()


class RulesFile:
    """The rules CSV as rows; ``reload`` is called after every write (the rules take effect at once)."""

    def __init__(self, path: Path, reload: Callable[[], object]) -> None:
        self.path = path
        self._reload = reload
        self._lock = threading.Lock()

    def rows(self) -> list[Row]:
        return _rows(self._lines())

    def add(self, list_: str, entry: RuleEntry) -> Row:
        with self._lock:
            lines = self._lines()
            if not lines:
                lines = [HEADER]
            elif not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(_line(list_, entry, lines))
            row = self._write(lines, len(lines) - 1)
            assert row is not None
            return row

    def edit(self, row_id: str, list_: str, entry: RuleEntry) -> Row:
        with self._lock:
            lines = self._lines()
            row = self._find(lines, row_id)
            lines[row.first:row.end] = [_line(list_, entry, lines)]
            new = self._write(lines, row.first)
            assert new is not None
            return new

    def remove(self, row_id: str) -> None:
        with self._lock:
            lines = self._lines()
            row = self._find(lines, row_id)
            del lines[row.first:row.end]
            self._write(lines, None)

    # ------------------------------------------------------------ internals

    def _lines(self) -> list[str]:
        try:
            # as the loader reads it (UTF-16, Windows-1252 too); written back as UTF-8
            return decode_text(self.path.read_bytes()).splitlines(keepends=True)
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as err:
            raise RuleEditError(f"cannot read {self.path}: {err}", 503) from err

    @staticmethod
    def _find(lines: list[str], row_id: str) -> Row:
        for row in _rows(lines):
            if row.id == row_id:
                return row
        raise RuleEditError(f"no rule {row_id!r} in the file (changed or removed meanwhile?)", 409)

    def _write(self, lines: list[str], at: int | None) -> Row | None:
        """Check the new file as the loader would, replace the old one atomically, reload the rules."""
        text = "".join(lines)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            try:
                read = read_rules_file(Path(tmp))
            except ConfigError as err:
                raise RuleEditError("the file would not load: " + "; ".join(err.errors), errors=err.errors) from err
            ours = [m for line, m in read.problems if at is not None and line == at + 1]
            if ours:  # the row written is one the loader would leave out
                raise RuleEditError(ours[0], errors=ours)
            os.chmod(tmp, self._mode())
            os.replace(tmp, self.path)
        except OSError as err:
            raise RuleEditError(f"cannot write {self.path}: {err}", 503) from err
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        self._reload()
        logger.info("rules file written path=%s rows=%d", self.path, len(_rows(lines)))
        return next((r for r in _rows(lines) if r.first == at), None)

    def _mode(self) -> int:
        try:
            return os.stat(self.path).st_mode & 0o777
        except OSError:
            return 0o640  # a new file: access lists are not for every user


__all__ = ["RuleEditError", "RulesFile", "Row", "parse_body"]
