"""Stage 6: plate reads -> one Decision per vehicle pass (a "new" event, then at most one "update").

Reads of one camera that arrive within ``pass_window_s`` of each other with similar text (or, when
only detected, overlapping boxes) form a pass. Its text is voted over reads and candidates; the
access rules turn the text into open / deny / none. Stale reads are published but never open.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import DecisionConfig
from .late import read_too_late
from .plates import canonical, distance, normalize
from .rules import AccessRules
from .types import APPROACHING, UNKNOWN, Box, Decision, PassEnd, PlateRead

logger = logging.getLogger(__name__)

CANDIDATE_WEIGHT = 0.5  # a runner-up candidate counts half as much as a top read
MAX_VOTES = 32  # texts kept per pass
DETECTED_ONLY_REASON = "detected only (no reader configured)"


@dataclass(eq=False)
class _Pass:
    id: str
    camera_id: str
    text: bool  # False: detector-only reads (plate == "")
    first_seen: float  # mono time of the reads
    last_seen: float
    box: Box
    votes: dict[str, float] = field(default_factory=dict)
    best: dict[str, PlateRead] = field(default_factory=dict)  # best read per voted text
    reads: int = 0
    events: int = 0  # 0, 1 = "new" sent, 2 = "update" sent too
    sent_plate: str = ""
    sent_action: str = ""
    sent_score: float = 0.0
    track_id: int = 0  # detector-only: the pipeline's pass of the plate
    direction: str = UNKNOWN  # the latest known direction of its reads' crops

    def voted(self) -> str:
        return max(self.votes.items(), key=lambda kv: kv[1])[0] if self.votes else ""

    def best_read(self) -> PlateRead:
        text = self.voted()
        if text in self.best:
            return self.best[text]
        return max(self.best.values(), key=lambda r: r.score)

    def top_texts(self, n: int = 5) -> list[str]:
        return sorted(self.votes, key=self.votes.__getitem__, reverse=True)[:n]


def _near(a: Box, b: Box, grow: float) -> bool:
    return a.expand(int(a.width * grow), int(a.height * grow)).intersects(b)


class Decider:
    """Owned by one thread (the pipeline's): ``observe`` each read, call ``expire`` about once a second."""

    def __init__(self, cfg: DecisionConfig, rules: AccessRules,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._cfg = cfg
        self._rules = rules
        self._clock = clock
        self._wall = wall
        self._active: dict[str, list[_Pass]] = {}
        self._ended: dict[str, list[_Pass]] = {}  # recently ended text passes, for rearm_s
        self._counts = dict.fromkeys(
            ("reads", "dropped_dscore", "dropped_vehicle", "passes", "rearm_suppressed",
             "new", "update", "unread", "open", "deny", "late", "not_approaching"), 0)

    # ------------------------------------------------------------ public

    def observe(self, read: PlateRead) -> list[Decision]:
        """Add one read; returns the decisions it caused (ended passes first), usually none or one."""
        out = self.expire()
        self._counts["reads"] += 1
        cfg = self._cfg
        if read.dscore < cfg.min_dscore:
            self._counts["dropped_dscore"] += 1
            return out
        has_text = bool(normalize(read.plate))
        if has_text and cfg.require_vehicle and (read.vehicle is None or read.vehicle.score <= 0):
            self._counts["dropped_vehicle"] += 1
            return out
        p = self._find(read, has_text) or (self._revive(read) if has_text else None) or self._start(read, has_text)
        self._add(p, read)
        d = self._maybe_emit(p, read) if has_text else self._detected_only(p, read)
        if d is not None:
            out.append(d)
        return out

    def expire(self, everything: bool = False) -> list[Decision]:
        """End passes unseen for ``pass_window_s`` (all of them if ``everything``).

        A pass that ended without a confident read still gets its one event, with action "none".
        """
        now = self._clock()
        out: list[Decision] = []
        for cam, passes in self._active.items():
            keep = []
            for p in passes:
                if everything or now - p.last_seen > self._cfg.pass_window_s:
                    if p.events == 0 and p.text:
                        self._adopt(p)
                    if p.events == 0:
                        out.append(self._unconfident(p))
                    if p.text:
                        self._ended.setdefault(cam, []).append(p)
                else:
                    keep.append(p)
            passes[:] = keep
        for ended in self._ended.values():
            ended[:] = [p for p in ended if now - p.last_seen <= self._cfg.rearm_s]
        return out

    def unread(self, end: PassEnd) -> list[Decision]:
        """A vehicle pass the upload gate saw end with no plate text: one "unread" event, so the
        operator knows someone was at the gate. It never opens."""
        out = self.expire()
        c = end.crop
        read = PlateRead(camera_id=end.camera_id, plate="", score=0.0, dscore=c.detection.score,
                         box=c.detection.box, wall_time=c.wall_time, mono_time=c.mono_time, crop=c)
        p = _Pass(uuid.uuid4().hex[:16], end.camera_id, False, c.mono_time, c.mono_time, c.detection.box,
                  track_id=end.track_id, direction=end.direction)
        p.best[""] = read
        late = read_too_late(read, self._clock(), self._cfg.max_decision_age_s)
        out.append(self._emit(p, "none", "", f"unread: {end.why}", late, 0.0, kind="unread"))
        return out

    def stats(self) -> dict[str, int]:
        return {**self._counts, "active_passes": sum(map(len, self._active.values()))}

    # ------------------------------------------------------------ grouping

    def _similar(self, p: _Pass, read: PlateRead) -> int | None:
        texts = {canonical(read.plate), *(canonical(c.plate) for c in read.candidates[:3])} - {""}
        best = None
        for a in texts:
            for b in map(canonical, p.top_texts()):
                limit = min(self._cfg.pass_max_distance, min(len(a), len(b)) // 3)
                d = distance(a, b, limit)
                if d <= limit and (best is None or d < best):
                    best = d
        return best

    def _find(self, read: PlateRead, has_text: bool) -> _Pass | None:
        window = self._cfg.pass_window_s
        found, found_d = None, 99
        for p in self._active.get(read.camera_id, []):
            if p.text != has_text or abs(read.mono_time - p.last_seen) > window:
                continue
            if not has_text:
                track = read.crop.track_id if read.crop is not None else 0
                same = track == p.track_id if track and p.track_id else _near(p.box, read.box, self._cfg.pass_box_grow)
                if same:
                    return p
                continue
            d = self._similar(p, read)
            if d is not None and d < found_d:
                found, found_d = p, d
        return found

    def _revive(self, read: PlateRead) -> _Pass | None:
        """The same plate (look-alikes included) back within rearm_s: its last pass goes on, no new event."""
        text = canonical(read.plate)
        for p in self._ended.get(read.camera_id, []):
            if canonical(p.voted()) == text:
                return self._unend(p)
        return None

    def _adopt(self, p: _Pass) -> None:
        """A new pass voting for the text of a pass that ended within rearm_s becomes that pass:
        same id, its events already sent (so no second "new")."""
        text = canonical(p.voted())
        ended = self._ended.get(p.camera_id, [])
        for old in ended:
            if canonical(old.voted()) != text:
                continue
            ended.remove(old)
            p.id, p.events, p.first_seen, p.reads = old.id, old.events, old.first_seen, p.reads + old.reads
            p.sent_plate, p.sent_action, p.sent_score = old.sent_plate, old.sent_action, old.sent_score
            for t, w in old.votes.items():
                p.votes[t] = p.votes.get(t, 0.0) + w
            for t, r in old.best.items():
                if t not in p.best or r.score > p.best[t].score:
                    p.best[t] = r
            self._counts["rearm_suppressed"] += 1
            return

    def _unend(self, p: _Pass) -> _Pass:
        self._ended[p.camera_id].remove(p)
        self._active.setdefault(p.camera_id, []).append(p)
        self._counts["rearm_suppressed"] += 1
        logger.debug("pass continues after rearm check pass_id=%s camera=%s", p.id, p.camera_id)
        return p

    def _start(self, read: PlateRead, has_text: bool) -> _Pass:
        p = _Pass(uuid.uuid4().hex[:16], read.camera_id, has_text, read.mono_time, read.mono_time, read.box)
        p.track_id = read.crop.track_id if read.crop is not None else 0
        self._active.setdefault(read.camera_id, []).append(p)
        self._counts["passes"] += 1
        return p

    def _add(self, p: _Pass, read: PlateRead) -> None:
        p.reads += 1
        if read.crop is not None and read.crop.direction != UNKNOWN:
            p.direction = read.crop.direction
        p.last_seen = max(p.last_seen, read.mono_time)
        p.box = read.box
        text = normalize(read.plate)
        if not text:
            p.best[""] = max(p.best.get("", read), read, key=lambda r: r.dscore)
            return
        p.votes[text] = p.votes.get(text, 0.0) + read.score
        for c in read.candidates[:5]:
            ct = normalize(c.plate)
            if ct and ct != text:
                p.votes[ct] = p.votes.get(ct, 0.0) + CANDIDATE_WEIGHT * c.score
        if text not in p.best or read.score > p.best[text].score:
            p.best[text] = read
        if len(p.votes) > MAX_VOTES:
            for t in sorted(p.votes, key=p.votes.__getitem__)[: len(p.votes) - MAX_VOTES]:
                del p.votes[t]
                p.best.pop(t, None)
        if not p.best:
            p.best[text] = read

    # ------------------------------------------------------------ deciding

    def _maybe_emit(self, p: _Pass, read: PlateRead) -> Decision | None:
        if read.score < self._cfg.min_score:
            return None
        if p.events == 0:
            self._adopt(p)
        if p.events >= 2:
            return None
        action, rule, reason, late = self._judge(p.voted(), read, p.direction)
        if p.events == 1:
            gain = read.score - p.sent_score
            # a stale read never changes the action by itself: "better" means text, freshness or score
            changed = p.voted() != p.sent_plate or (action != p.sent_action and not late)
            if not changed and gain < self._cfg.update_min_gain:
                return None
            if not changed and action != p.sent_action:  # stale: its "none" would undo a sent "open"
                return None
            reason += "" if changed else f" (better read: score {read.score:.2f})"
        return self._emit(p, action, rule, reason, late, read.score)

    def _judge(self, text: str, read: PlateRead, direction: str) -> tuple[str, str, str, bool]:
        m = self._rules.check(text, read.camera_id, read.wall_time)
        now, limit = self._clock(), self._cfg.max_decision_age_s
        late = read_too_late(read, now, limit)
        action, reason = m.action, m.reason
        if late and action == "open":
            age = now - read.mono_time
            why = "arrived late" if read.late else f"{age:.1f} s old > max_decision_age_s {limit:g}"
            action, reason = "none", f"stale read ({why}), not opening; {m.reason}"
        if action == "open" and self._cfg.open_for == APPROACHING and direction != APPROACHING:
            self._counts["not_approaching"] += 1
            action, reason = "none", f"vehicle {direction}, open_for = approaching: not opening; {m.reason}"
        return action, m.rule, reason, late

    def _unconfident(self, p: _Pass) -> Decision:
        if not p.text:
            return self._emit(p, "none", "", DETECTED_ONLY_REASON, False, 0.0)
        best = p.best_read()
        m = self._rules.check(p.voted(), p.camera_id, best.wall_time)
        reason = f"score {best.score:.2f} < min_score {self._cfg.min_score:.2f}; {m.reason}"
        late = read_too_late(best, self._clock(), self._cfg.max_decision_age_s)
        return self._emit(p, "none", m.rule, reason, late, best.score)

    def _detected_only(self, p: _Pass, read: PlateRead) -> Decision | None:
        if p.events:
            return None
        late = read_too_late(read, self._clock(), self._cfg.max_decision_age_s)
        return self._emit(p, "none", "", DETECTED_ONLY_REASON, late, 0.0)

    def _emit(self, p: _Pass, action: str, rule: str, reason: str, late: bool, score: float,
              kind: str = "") -> Decision:
        kind = kind or ("new" if p.events == 0 else "update")
        p.events += 1
        p.sent_plate, p.sent_action, p.sent_score = p.voted(), action, max(score, p.sent_score)
        self._counts[kind] += 1
        if action in ("open", "deny"):
            self._counts[action] += 1
        self._counts["late"] += late
        d = Decision(event_id=uuid.uuid4().hex, pass_id=p.id, kind=kind, camera_id=p.camera_id,
                     plate=p.voted(), read=p.best_read(), action=action, rule=rule, reason=reason,
                     late=late, decided_at=self._wall(), direction=p.direction)
        logger.info("decision kind=%s camera=%s plate=%s action=%s rule=%s late=%s direction=%s pass_id=%s"
                    " reason=%r", kind, d.camera_id, d.plate, action, rule, late, p.direction, p.id, reason)
        return d
