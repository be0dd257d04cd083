"""Access rules: allow/deny lists from the config and a CSV file -> open / deny / none for a plate.

Matching compares normalised text (``agent.plates``); "confusions" also equates the usual OCR
look-alikes (O/0, I/1/L, B/8, S/5, Z/2); "fuzzy" adds an edit distance. Deny beats allow.

Dates and schedules are wall-clock times: until the clock is known to be synchronised, a dated or
scheduled allow rule is not in force, and a dated or scheduled deny rule is, whatever its dates say.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import RulesConfig
from .errors import ConfigError
from .plates import canonical, distance, is_plate, normalize
from .rulebook import RuleEntry, Window, parse_schedule, parse_when, read_rules_file
from .timebase import system_synchronised

logger = logging.getLogger(__name__)

_LEVELS = {"exact": 0, "confusions": 1, "fuzzy": 2}


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

    @property
    def dated(self) -> bool:
        """Its validity or schedule depends on the wall clock."""
        return self.valid_from is not None or self.valid_until is not None or bool(self.schedule)

    def inactive_reason(self, camera_id: str, wall: float, synchronised: bool = True) -> str:
        """'' when the rule applies to this camera at this time, else why not. On a clock not known
        to be synchronised the dates cannot be trusted: allow is off, deny is on (fail closed)."""
        if self.cameras and camera_id not in self.cameras:
            return f"not for camera {camera_id}"
        if self.dated and not synchronised:
            return "" if self.list == "deny" else "dated or scheduled, and the clock is not synchronised"
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
    return Rule(plate=plate, norm=norm, canon=canonical(plate), list=list_, label=label,
                cameras=frozenset(c for c in cameras if c), valid_from=parse_when(valid_from, False),
                valid_until=parse_when(valid_until, True), schedule=parse_schedule(schedule),
                schedule_text=schedule, source=source)


def _from_entry(list_: str, e: RuleEntry, path: str, source: str = "config") -> Rule:
    try:
        return make_rule(list_, e.plate, e.label, e.cameras, e.valid_from, e.valid_until, e.schedule, source)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err


def load_csv(path: Path) -> tuple[list[Rule], list[tuple[int, str]]]:
    """Rules from the CSV file's good rows, and its bad rows as (line, problem) (see
    ``rulebook.read_rules_file``); raises ConfigError when the file is unusable."""
    read = read_rules_file(path)
    return [_from_entry(list_, e, f"rules.file: {path}:{line}", source=f"{path.name}:{line}")
            for list_, e, line in read.rows], read.problems


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

    def __init__(self, cfg: RulesConfig, clock: Callable[[], float] = time.monotonic,
                 synchronised: Callable[[], bool] = system_synchronised) -> None:
        self._cfg = cfg
        self._clock = clock
        self._synchronised = synchronised
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
        self.bad_rows = 0  # in the rules file as last loaded

    def load(self) -> None:
        """First load of the file: a missing or unusable file is a startup error; bad rows are left
        out (``config.load`` has logged each, as check-config shows them)."""
        if self._path is not None:
            rules, problems = load_csv(self._path)
            self._stamp = self._file_stamp()
            self._install(rules)
            self.bad_rows = len(problems)
            if problems:
                logger.warning("rules file loaded without its bad rows file=%s rules=%d bad_lines=%s", self._path,
                               len(rules), ",".join(str(line) for line in sorted({n for n, _ in problems})))

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
                rules, problems = load_csv(self._path)
            except (ConfigError, OSError) as err:
                self.reload_errors += 1
                logger.error("rules reload failed, keeping %d rules: %s", len(self._rules), err)
                return False
            self._install(rules)
            self.reloads += 1
            self.bad_rows = len(problems)
        for _, problem in problems:
            logger.warning("%s", problem)
        logger.info("rules reloaded file=%s rules=%d bad_rows=%d", self._path, len(self._rules), len(problems))
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
        synced: bool | None = None
        for rule in self._rules:
            how = self._how(norm, canon, rule)
            if how is not None:
                if synced is None and rule.dated:
                    synced = self._synchronised()
                hits.append((*how, rule, rule.inactive_reason(camera_id, wall, synced is not False)))
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
        return {"rules": len(self._rules), "dated": sum(r.dated for r in self._rules), "reloads": self.reloads,
                "reload_errors": self.reload_errors, "bad_rows": self.bad_rows}
