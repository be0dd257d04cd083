"""Access rules: allow/deny lists from the config and a CSV file -> open / deny / none for a plate.

Matching compares normalised text (``agent.plates``); "confusions" also equates the usual OCR
look-alikes (O/0, I/1/L, B/8, S/5, Z/2); "fuzzy" adds an edit distance. Deny beats allow.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import DATE_RE, SCHEDULE_RE, RuleEntry, RulesConfig
from .errors import ConfigError
from .plates import canonical, distance, is_plate, normalize

logger = logging.getLogger(__name__)

_LEVELS = {"exact": 0, "confusions": 1, "fuzzy": 2}
_WINDOW = re.compile(r"(?:(?P<days>[A-Za-z,\- ]+?)\s+)?(?P<h1>\d{1,2}):(?P<m1>\d{2})-(?P<h2>\d{1,2}):(?P<m2>\d{2})")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# ---------------------------------------------------------------- schedule and validity


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


def parse_schedule(text: str) -> tuple[Window, ...]:
    """``"Mon-Fri 07:00-19:00; Sat 08:00-12:00"`` -> windows; ``""`` -> () (always)."""
    windows = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        m = _WINDOW.fullmatch(part)
        if not m:
            raise ValueError(f"bad schedule {part!r} (expected e.g. 'Mon-Fri 07:00-19:00')")
        days: set[int] = set()
        for spec in filter(None, (s.strip().lower() for s in re.split(r"[, ]+", m["days"] or "mon-sun"))):
            a, _, b = spec.partition("-")
            if a[:3] not in _DAYS or (b and b[:3] not in _DAYS):
                raise ValueError(f"bad weekday in {part!r}")
            i, j = _DAYS.index(a[:3]), _DAYS.index((b or a)[:3])
            days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(j + 1)])
        h1, m1, h2, m2 = (int(m[k]) for k in ("h1", "m1", "h2", "m2"))
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ValueError(f"bad time in {part!r}")
        windows.append(Window(frozenset(days), h1 * 60 + m1, h2 * 60 + m2))
    return tuple(windows)


def _parse_when(text: str, end: bool) -> float | None:
    if not text:
        return None
    if not re.search(DATE_RE, text):
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM)")
    when = dt.datetime.fromisoformat(text.replace(" ", "T"))
    if end and len(text) == 10:  # a bare end date covers that whole day
        when += dt.timedelta(days=1)
    return when.timestamp()  # naive -> local time


# ---------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rule:
    plate: str  # as written, for "which rule fired"
    norm: str
    canon: str
    list: str  # "allow" | "deny"
    label: str = ""
    cameras: frozenset[str] = frozenset()
    valid_from: float | None = None
    valid_until: float | None = None  # exclusive
    schedule: tuple[Window, ...] = ()
    schedule_text: str = ""
    source: str = "config"

    @property
    def name(self) -> str:
        return f"{self.list}:{self.norm}"

    def inactive_reason(self, camera_id: str, wall: float) -> str:
        """'' when the rule applies to this camera at this time, else why not."""
        if self.cameras and camera_id not in self.cameras:
            return f"not for camera {camera_id}"
        if self.valid_from is not None and wall < self.valid_from:
            return "not valid yet"
        if self.valid_until is not None and wall >= self.valid_until:
            return "expired"
        if self.schedule and not any(w.contains(dt.datetime.fromtimestamp(wall)) for w in self.schedule):
            return f"outside schedule {self.schedule_text}"
        return ""


def make_rule(list_: str, plate: str, label: str = "", cameras: Iterable[str] = (),
              valid_from: str = "", valid_until: str = "", schedule: str = "",
              source: str = "config") -> Rule:
    """Build one rule; raises ValueError naming the bad field."""
    if list_ not in ("allow", "deny"):
        raise ValueError(f"list must be allow or deny, not {list_!r}")
    if not is_plate(plate):
        raise ValueError(f"bad plate {plate!r}")
    norm = normalize(plate)
    if schedule and not re.search(SCHEDULE_RE, schedule):
        raise ValueError(f"bad schedule {schedule!r}")
    return Rule(plate=plate, norm=norm, canon=canonical(plate), list=list_, label=label,
                cameras=frozenset(c for c in cameras if c), valid_from=_parse_when(valid_from, False),
                valid_until=_parse_when(valid_until, True), schedule=parse_schedule(schedule),
                schedule_text=schedule, source=source)


def _from_entry(list_: str, e: RuleEntry, path: str) -> Rule:
    try:
        return make_rule(list_, e.plate, e.label, e.cameras, e.valid_from, e.valid_until, e.schedule)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err


def load_csv(path: Path) -> list[Rule]:
    """Rules from ``plate,label,list,valid_from,valid_until,schedule,cameras``; header and # lines optional."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"rules.file: cannot read {path}: {err}") from err
    rules, errors = [], []
    for lineno, row in enumerate(csv.reader(text.splitlines()), 1):
        row = [c.strip() for c in row]
        if not row or not any(row) or row[0].startswith("#") or (lineno == 1 and row[0].lower() == "plate"):
            continue
        row += [""] * (7 - len(row))
        plate, label, list_, vfrom, vuntil, sched, cams = row[:7]
        try:
            rules.append(make_rule(list_.lower() or "allow", plate, label, re.split(r"[\s;|,]+", cams),
                                   vfrom, vuntil, sched, source=f"{path.name}:{lineno}"))
        except ValueError as err:
            errors.append(f"rules.file: {path}:{lineno}: {err}")
    if errors:
        raise ConfigError(errors)
    return rules


@dataclass(frozen=True, slots=True)
class Match:
    """The rules' verdict for one plate."""

    action: str  # "open" | "deny" | "none"
    rule: str  # "allow:AB123CD", "deny:...", or ""
    reason: str
    label: str = ""


class AccessRules:
    """Allow/deny rules from the config plus an optional CSV file, reloaded when the file changes.

    ``check`` is called from the decision thread; ``reload`` may come from any thread and
    ``request_reload`` is safe in a signal handler (it only sets a flag).
    """

    def __init__(self, cfg: RulesConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._cfg = cfg
        self._clock = clock
        self._level = _LEVELS[cfg.match]
        self._inline = [_from_entry(lst, e, f"rules.{lst}[{i}]")
                        for lst in ("deny", "allow") for i, e in enumerate(getattr(cfg, lst))]
        self._path = Path(cfg.file) if cfg.file else None
        self._rules: tuple[Rule, ...] = tuple(self._inline)
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self._reload_wanted = False
        self._lock = threading.Lock()
        self.reloads = 0
        self.reload_errors = 0

    def load(self) -> None:
        """First load of the file: a missing or broken file is a startup error."""
        if self._path is not None:
            rules = load_csv(self._path)
            self._stamp = self._file_stamp()
            self._install(rules)

    def request_reload(self) -> None:
        self._reload_wanted = True

    def reload(self) -> bool:
        """Re-read the file now; on error keep the rules in force (never fail open or closed)."""
        self._reload_wanted = False
        if self._path is None:
            return False
        with self._lock:
            try:
                self._stamp = self._file_stamp()  # a broken file is retried once it changes
                rules = load_csv(self._path)
            except (ConfigError, OSError) as err:
                self.reload_errors += 1
                logger.error("rules reload failed, keeping %d rules: %s", len(self._rules), err)
                return False
            self._install(rules)
            self.reloads += 1
        logger.info("rules reloaded file=%s rules=%d", self._path, len(self._rules))
        return True

    def _install(self, file_rules: list[Rule]) -> None:
        self._rules = (*self._inline, *file_rules)  # one reference swap: readers never lock

    def _file_stamp(self) -> tuple[int, int]:
        assert self._path is not None
        st = os.stat(self._path)
        return st.st_mtime_ns, st.st_size

    def _maybe_reload(self) -> None:
        if self._path is None:
            return
        now = self._clock()
        if not self._reload_wanted and now < self._next_check:
            return
        self._next_check = now + self._cfg.reload_check_s
        try:
            changed = self._file_stamp() != self._stamp
        except OSError:
            changed = True  # vanished: reload logs it and keeps the current rules
        if changed or self._reload_wanted:  # also the first check when load() was not called
            self.reload()

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def check(self, plate: str, camera_id: str, wall: float | None = None) -> Match:
        """Which rule, if any, decides this plate on this camera at this (wall) time."""
        self._maybe_reload()
        wall = time.time() if wall is None else wall
        norm, canon = normalize(plate), canonical(plate)
        if not norm:
            return Match("none", "", "no plate text")
        hits: list[tuple[int, int, Rule, str]] = []
        for rule in self._rules:
            how = self._how(norm, canon, rule)
            if how is not None:
                hits.append((*how, rule, rule.inactive_reason(camera_id, wall)))
        active = [h for h in hits if not h[3]]
        deny = [h for h in active if h[2].list == "deny"]
        best = min(deny or active, key=lambda h: (h[0], h[1]), default=None)
        if best is not None:
            level, dist, rule, _ = best
            reason = ("exact match", "OCR look-alike match", f"fuzzy match (distance {dist})")[level]
            label = f" {rule.label!r}" if rule.label else ""
            return Match("deny" if rule.list == "deny" else "open", rule.name, f"{reason}{label}", rule.label)
        if hits:
            level, dist, rule, why = min(hits, key=lambda h: (h[0], h[1]))
            return Match("none", rule.name, f"{rule.name} matches but {why}", rule.label)
        return Match("none", "", "no matching rule")

    def _how(self, norm: str, canon: str, rule: Rule) -> tuple[int, int] | None:
        if norm == rule.norm:
            return 0, 0
        if self._level >= 1 and canon == rule.canon:
            return 1, 0
        if self._level >= 2:
            d = distance(canon, rule.canon, self._cfg.max_distance)
            if d <= self._cfg.max_distance and d < len(rule.canon):
                return 2, d
        return None

    def stats(self) -> dict[str, int]:
        return {"rules": len(self._rules), "reloads": self.reloads, "reload_errors": self.reload_errors}
