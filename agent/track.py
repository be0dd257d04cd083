"""Upload gate: groups one camera's plate sightings into vehicle passes and picks the crops worth a read.

Every image sent to Plate Recognizer is billed, so each rule here saves calls without delaying the
gate (README "Which crops are paid for"):
- only what moves is a vehicle: a plate that has not moved since it was first seen counts only
  where there is motion now, is read at most once, and once it stands still for ``static_after_s``
  (or the reader found nothing there) it is a static object, never paid for until it moves;
- whole plates only: a box touching the frame edge (or an include zone's border) waits for a whole
  one, for ``whole_wait_s`` at most, and is then read once anyway; the same for a blurred plate and,
  while another vehicle nearer the camera is in view, for a box not yet steady (seen once, or
  changing shape: a plate coming out from behind that vehicle is revealed side first);
- a static object stays at its place while what is seen there does not look like it (a car passing
  in front of it, merged with it): it is not dragged along after the passing car;
- no waiting for a better crop: the first whole, sharp crop goes at once, and an empty or unsure
  answer frees the next one at once, unless it shows the same view again (``views``: after an empty
  answer, a box of the same size and shape carried along with the vehicle is the same view);
- one vehicle, one plate: a detection that moves with another pass is part of that vehicle, not
  paid for while the other is read or being read, and no ``unread`` event (``companions``);
- direction: each pass knows whether its plate approaches (grows) or leaves (shrinks); with
  ``pay_for = "approaching"`` a leaving vehicle is not paid for.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .companions import Companions
from .config import UploadConfig
from .direction import direction_of
from .statics import Look, StaticObject, StaticObjects, look_diff
from .types import APPROACHING, LEAVING, UNKNOWN, Box, PassEnd, PlateCrop
from .views import View, same_shape, seen_before, shape, spent_elsewhere

MATCH_REACH = 1.5  # plate widths a plate may move between two sightings of one pass
MATCH_SPEED = 6.0  # ... or this many widths a second between two detector frames (a loaded machine)
MATCH_REACH_MAX = 3.0  # but never further: another car arriving where one has gone is another pass
PREDICT_MAX_S = 0.5  # a moving plate is looked for where its speed takes it, this far ahead at most
MOVE_CONFIRM = 3  # sightings away from where it stood still before a settled plate counts as moved
LOOK_STEP_MAX_S = 0.5  # unseen time one detector frame can add (a stall is not a car leaving)
STALE_S = 60.0  # a pass unseen this long ends even if nothing moved where it was last seen
MATCH_MAX_SCALE = 2.0  # width ratio beyond which two boxes are not the same plate
UNREAD_MIN_SIGHTINGS = 3  # fewer readable sightings: a glimpse or a false detection, not a vehicle
CLOSING_MAX_S = 60.0  # a pass that ended with a read in flight waits this long for the answer
MISSED_MAX_S = 1.0  # a moving plate the detector missed this long may be found as far as its speed took it
GONE_SPEED = 0.5  # plate widths a second: a plate moving this fast when last seen was driving, not waiting

# answers fed back to the gate
CONFIDENT, UNSURE, EMPTY, FAILED = "confident", "unsure", "empty", "failed"


@dataclass(frozen=True)
class Sighting:
    """One detection in one frame, as the pipeline saw it."""

    box: Box
    look: Look
    at: float  # monotonic capture time
    moving: bool = True  # inside a motion region of this frame
    whole: bool = True  # clear of the frame edge and of include zones' borders


@dataclass(eq=False)
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    anchor: Box  # where it last stood still
    anchor_since: float
    moved: bool = False  # left its first place at least once: a vehicle
    widths: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=32))
    direction: str = UNKNOWN
    uploads: int = 0
    in_flight: int = 0  # uploads not answered yet
    best_uploaded: float = 0.0  # quality of the best crop sent so far
    done: bool = False  # a confident read came back (or an earlier read of its static object)
    text: bool = False  # some answer carried plate text
    views: list[View] = field(default_factory=list)  # answered without a confident read
    first_crop_at: float | None = None  # first sighting large enough to read
    held_since: float | None = None  # first crop held back as cut or blurred
    static: StaticObject | None = None
    inherited: bool = False  # ``static`` was known before this pass (its read state is the object's)
    last_crop: PlateCrop | None = None
    readable: int = 0  # sightings large enough to read
    away: int = 0  # sightings in a row away from a settled anchor, not yet taken as moving
    unseen_s: float = 0.0  # detector time with motion at its place and no sighting of it
    looked_s: float = 0.0  # detector time with no sighting of it
    cut: bool = False  # its last sighting touched the frame edge: it may have left the view
    sightings: int = 0  # before the current one
    velocity: tuple[float, float] = (0.0, 0.0)  # of its box centre, pixels a second
    shape: float = 0.0  # width/height of its last whole sighting (0: none yet)
    steady: bool = False  # its box keeps its shape (see ``_observe``)


def _shifted(anchor: Box, box: Box, tolerance: float, grow: bool = True) -> bool:
    """The box left its anchor: its centre moved (or, with ``grow``, its width changed) by more
    than ``tolerance`` widths."""
    w = max(1, anchor.width)
    (ax, ay), (bx, by) = anchor.centre, box.centre
    return math.hypot(bx - ax, by - ay) > tolerance * w or (grow and abs(box.width - anchor.width) > tolerance * w)


def _rooted(t: Track, now: float, cfg: UploadConfig) -> bool:
    """A static object that never moved: known from before, or still for ``static_after_s``."""
    return t.static is not None and not t.moved and (t.inherited or now - t.anchor_since >= cfg.static_after_s)


def _distance(t: Track, s: Sighting, dt: float, cfg: UploadConfig) -> float | None:
    """Distance in plate widths from where track ``t`` is expected to be, or None when sighting
    ``s`` cannot be the same plate (``dt``: seconds since the detector's previous frame; a loaded
    machine looks less often, and a plate the detector missed for a few frames was not looked at,
    so a plate may have gone further, up to ``MATCH_REACH_MAX``).
    A static object that never moved (a sign, a parked car) is, away from its place, only what
    looks like it: a parked car starts slowly, its plate still sharp; a plate that does not look
    like it is another vehicle's."""
    a, b = t.box, s.box
    if _rooted(t, s.at, cfg) and t.static is not None and not t.static.box.intersects(b) \
            and not _looks_like(t.static, s, cfg.look_max_diff):
        return None
    wa, wb = max(1, a.width), max(1, b.width)
    if max(wa, wb) > MATCH_MAX_SCALE * min(wa, wb):
        return None
    ahead = min(PREDICT_MAX_S, max(0.0, s.at - t.last_seen))
    (ax, ay), (bx, by) = a.centre, b.centre
    ax, ay = ax + t.velocity[0] * ahead, ay + t.velocity[1] * ahead
    d = math.hypot(ax - bx, ay - by) / max(wa, wb)
    missed = s.at - t.last_seen if s.at - t.last_seen <= MISSED_MAX_S else 0.0
    reach = max(MATCH_REACH, min(MATCH_REACH_MAX, MATCH_SPEED * max(dt, missed)))
    return d if d <= reach or a.iou(b) > 0.05 else None


def _looks_like(obj: StaticObject, s: Sighting, max_look_diff: float) -> bool:
    return look_diff(obj.look, s.look) <= max_look_diff


class PlateTracks:
    """Owned by one camera's pipeline thread; answers are fed back through ``answered``."""

    def __init__(self, cfg: UploadConfig, statics: StaticObjects | None = None, camera_id: str = "") -> None:
        self.cfg = cfg
        self.camera_id = camera_id
        self.statics = statics if statics is not None else StaticObjects(cfg.static_ttl_s, cfg.look_max_diff)
        self.tracks: list[Track] = []
        self.counters: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._in_flight: dict[tuple[int, int], tuple[Track, Look]] = {}  # (track id, frame seq) -> track, look sent
        self._closing: list[tuple[float, Track]] = []  # ended with a read in flight
        self._last_look: float | None = None  # the previous frame the detector ran on
        self.companions = Companions()  # passes that are one vehicle

    # ------------------------------------------------------------ sightings

    def offer_frame(self, items: Sequence[tuple[PlateCrop | None, Sighting]], now: float | None = None,
                    regions: Sequence[Box] | None = None) -> list[PlateCrop]:
        """All detections of one frame the detector ran on (crop None: not croppable, tracked only),
        and its motion ``regions`` (None: everywhere); returns the crops to upload, each tagged
        with its pass and direction."""
        now = max((s.at for _, s in items), default=self._last_look or 0.0) if now is None else now
        out = []
        tracks = self._assign([s for _, s in items])
        seen = {id(t) for t in tracks}
        lost = [t for t in self.tracks if id(t) not in seen and t.last_seen < now]
        self.companions.observe([(t, s.box) for t, (_, s) in zip(tracks, items, strict=True)], regions, lost, now)
        for (crop, s), track in zip(items, tracks, strict=True):
            sent = self._offer(track, crop, s)
            if sent is not None:
                out.append(sent)
        # a plate leaves only by moving: a pass ages only while there is motion where it was last
        # seen and the detector does not find it (a car standing at the barrier while nothing
        # else moves stays its pass however long it waits)
        step = min(LOOK_STEP_MAX_S, max(0.0, now - self._last_look)) if self._last_look is not None else 0.0
        self._last_look = now
        for t in self.tracks:
            if id(t) in seen:
                t.unseen_s = t.looked_s = 0.0
                continue
            t.looked_s += step
            if regions is None or any(r.intersects(t.box) for r in regions):
                t.unseen_s += step
        return out

    def offer(self, crop: PlateCrop | None, s: Sighting) -> PlateCrop | None:
        """One detection alone in its frame."""
        sent = self.offer_frame([(crop, s)])
        return sent[0] if sent else None

    def _assign(self, sightings: Sequence[Sighting]) -> list[Track]:
        """Each sighting's pass: the nearest track not taken by a closer sighting, else a new one."""
        pairs = []
        for i, s in enumerate(sightings):
            for t in self.tracks:
                dt = s.at - self._last_look if self._last_look is not None else 0.0
                d = _distance(t, s, dt, self.cfg)
                if d is not None:
                    pairs.append((d, -t.last_seen, i, t.id))
        by_id = {t.id: t for t in self.tracks}
        chosen: dict[int, Track] = {}
        taken: set[int] = set()
        for _, _, i, tid in sorted(pairs):
            if i not in chosen and tid not in taken:
                chosen[i] = by_id[tid]
                taken.add(tid)
        out = []
        for i, s in enumerate(sightings):
            track = chosen.get(i)
            if track is None:
                track = Track(next(self._ids), s.box, s.at, s.at, s.box, s.at)
                track.static = self.statics.match(s.box, s.look, s.at)
                track.inherited = track.static is not None
                self.tracks.append(track)
            out.append(track)
        return out

    def _offer(self, track: Track, crop: PlateCrop | None, s: Sighting) -> PlateCrop | None:
        self._observe(track, s, crop is not None)
        if crop is None:
            return None
        track.last_crop = crop
        why = self._hold(track, crop, s)
        if why:
            self.counters[f"held_{why}"] += 1
            return None
        track.uploads += 1
        track.in_flight += 1
        track.best_uploaded = max(track.best_uploaded, crop.quality)
        self._in_flight[(track.id, crop.frame_seq)] = (track, s.look)
        return dataclasses.replace(crop, track_id=track.id, direction=track.direction)

    def _observe(self, track: Track, s: Sighting, readable: bool) -> None:
        cfg, now = self.cfg, s.at
        # a static object that never moved stays at its place while what is seen there does not
        # look like it (a car passing in front, merged with it): it is looked for at its place
        follow = not _rooted(track, now, cfg) or track.static is None \
            or _looks_like(track.static, s, cfg.look_max_diff)
        if now > track.last_seen and follow:
            (px, py), (cx, cy), dt = track.box.centre, s.box.centre, now - track.last_seen
            vx, vy = track.velocity
            track.velocity = ((vx + (cx - px) / dt) / 2, (vy + (cy - py) / dt) / 2)
        track.box = s.box if follow else track.anchor
        track.last_seen, track.cut = now, not s.whole
        if readable:
            track.readable += 1
            track.first_crop_at = now if track.first_crop_at is None else track.first_crop_at
        if s.whole:  # a cut box's width says nothing about distance
            now_shape = shape(s.box)
            if track.shape:  # the same shape as its last whole sighting: not being revealed or hidden
                track.steady = same_shape(now_shape, track.shape)
            else:  # its first whole sighting: steady after it came in cut at the frame edge, not
                # when it appeared mid-frame from nowhere (from behind something)
                track.steady = track.sightings > 0
            track.shape = now_shape
            track.widths.append((now, s.box.width))
            d = direction_of(track.widths, now)
            track.direction = d if d != UNKNOWN else track.direction
        settled = now - track.anchor_since >= cfg.static_after_s
        # it stood still for long: a box that grows, or moves for a frame or two, is a car passing
        # in front of it or the detector's jitter, not the sign or the parked car driving off
        shifted = _shifted(track.anchor, s.box, cfg.still_tolerance, grow=not settled)
        if shifted and settled:
            track.away += 1
            shifted = track.away >= MOVE_CONFIRM
        else:
            track.away = 0
        if shifted:
            track.box, track.anchor, track.anchor_since, track.moved, track.away = s.box, s.box, now, True, 0
            if track.static is not None:  # it moves: a vehicle again
                if track.inherited and track.static.state != "unread":
                    track.done = True  # read before, at its place: that read was its one
                self.statics.remove(track.static, now)
                track.static, track.inherited = None, False
        elif track.static is None and not track.away and now - track.anchor_since >= cfg.static_after_s \
                and not track.in_flight:
            if not track.moved or track.done:  # an unread vehicle waiting at the barrier is still a pass
                state = "read" if track.text else "not_a_plate" if track.uploads else "unread"
                track.static = self.statics.add(s.box, s.look, state, now)
        if track.static is not None:
            track.static.last_seen = now
        track.sightings += 1

    def _hold(self, track: Track, crop: PlateCrop, s: Sighting) -> str:
        """Why this crop is not uploaded now ("" = upload it)."""
        cfg, now = self.cfg, s.at
        if track.static is not None:
            track.static.hits += 1
            return "static"
        if track.done:
            return "done"
        if track.in_flight:
            return "in_flight"
        if self.companions.busy_beside(track) or (self.companions.undecided(track)
                                                  and now - track.first_seen < cfg.whole_wait_s):
            return "companion"  # one vehicle, one read: its plate is read, or being read, in another pass
        if track.uploads - (spent_elsewhere(track.views, s.box) if s.whole else 0) >= cfg.max_uploads_per_pass:
            return "max_uploads"
        if not track.moved:
            if not s.moving:
                return "not_moving"  # only what moves is a vehicle
            if track.uploads:
                return "still"  # it has not moved since its read: the same answer again
        flaw = "cut" if not s.whole else "blurred" if crop.sharpness < cfg.min_sharpness \
            else "unsteady" if not track.steady and self._behind(track, s) else ""
        if flaw:
            if track.uploads:
                return flaw
            track.held_since = now if track.held_since is None else track.held_since
            if now - track.held_since < cfg.whole_wait_s:
                return flaw
        if cfg.pay_for == APPROACHING and track.direction == LEAVING:
            return "leaving"
        waited = now - (track.first_crop_at if track.first_crop_at is not None else now)
        if track.direction == UNKNOWN and waited < cfg.direction_wait_s:
            return "direction"
        if seen_before(track.views, s.box, s.look, crop.sharpness, crop.quality, track.best_uploaded, now, cfg):
            return "same_view"
        return ""

    def _behind(self, track: Track, s: Sighting) -> bool:
        """Another vehicle nearer the camera (its plate wider) is in view: this plate may be
        partly hidden behind it."""
        return any(t is not track and t.moved and t.box.width > s.box.width
                   and s.at - t.last_seen <= PREDICT_MAX_S for t in self.tracks)

    # ------------------------------------------------------------ answers and ends

    def answered(self, crop: PlateCrop, outcome: str) -> None:
        """The read of an uploaded crop came back: confident | unsure | empty | failed."""
        found = self._in_flight.pop((crop.track_id, crop.frame_seq), None)
        if found is None:
            return
        track, look = found
        track.in_flight = max(0, track.in_flight - 1)
        if outcome == FAILED:  # refused or parked, not read now: it does not count against the pass
            track.uploads = max(0, track.uploads - 1)
        if outcome == CONFIDENT:
            track.done = track.text = True
        elif outcome in (UNSURE, EMPTY):
            track.text = track.text or outcome == UNSURE
            track.views.append(View(crop.detection.box, look, crop.sharpness, crop.mono_time, outcome == EMPTY))
            if outcome == EMPTY and not track.moved and track.static is None:
                # the reader found no plate on something that has not moved: not a plate
                track.static = self.statics.add(crop.detection.box, look, "not_a_plate", track.last_seen)

    def expire(self, now: float) -> list[PassEnd]:
        """End passes unseen for ``pass_gap_s`` of detector time with motion at their place, or for
        ``pass_gap_s`` when last seen at the frame edge (gone out of view), for ``pass_gap_s`` of
        frames looked at (by the detector, or by the motion gate seeing nothing move) when last seen
        driving (gone on), for ``MISSED_MAX_S`` of detector time when seen only once and never paid
        for (a glimpse), or ``STALE_S`` in all;
        returns the vehicle passes that ended unread."""
        self.statics.load(now)  # on the owning thread, before the first sighting
        gap = self.cfg.pass_gap_s
        gone = [t for t in self.tracks
                if t.unseen_s > gap or (t.cut and now - t.last_seen > gap) or (self._driving(t) and t.looked_s > gap)
                or (self._glimpse(t) and t.looked_s > MISSED_MAX_S) or now - t.last_seen > STALE_S]
        if gone:
            self.tracks = [t for t in self.tracks if t not in gone]
            self._closing += [(now, t) for t in gone]
        ended: list[PassEnd] = []
        keep = []
        for since, t in self._closing:
            if t.in_flight and now - since <= CLOSING_MAX_S:
                keep.append((since, t))  # its answer may still carry the plate
                continue
            self._in_flight = {k: v for k, v in self._in_flight.items() if v[0] is not t}
            end = self._unread(t)
            self.companions.forget(t)
            if end is not None:
                ended.append(end)
        self._closing = keep
        return ended

    @staticmethod
    def _glimpse(t: Track) -> bool:
        """Seen once, never paid for: missed for longer than the detector misses a real plate, it was a
        false detection (kept, it would take the next plate passing close by, a car driving off, for a
        vehicle of its own)."""
        return t.sightings <= 1 and not t.uploads

    @staticmethod
    def _driving(t: Track) -> bool:
        """It was moving when last seen: not found for ``pass_gap_s``, it has driven on (only a
        plate that stood still may stay unseen for long, waiting where nothing moves)."""
        return math.hypot(*t.velocity) > GONE_SPEED * max(1, t.box.width)

    def _unread(self, t: Track) -> PassEnd | None:
        """A vehicle (it moved, was large enough to read, more than a glimpse) whose pass ended
        with no plate text."""
        if t.text or t.done or not t.moved or t.last_crop is None or t.readable < UNREAD_MIN_SIGHTINGS:
            return None
        if self.companions.read_beside(t):
            self.counters["unread_companion"] += 1  # part of a vehicle read in another pass: it has its event
            return None
        if t.uploads:
            why = f"no plate read in {t.uploads} upload(s)"
        elif self.cfg.pay_for == APPROACHING and t.direction == LEAVING:
            why = "not read: leaving (pay_for = approaching)"
        else:
            why = "not read: no whole, sharp plate seen"
        self.counters["unread"] += 1
        return PassEnd(self.camera_id, t.id, t.direction, t.uploads, why, t.last_crop)
