"""Upload gate, companions: a second detection that moves with another pass is part of that pass's
vehicle (a badge, a grille, lettering on its body), not a vehicle of its own: a vehicle shows the
camera one plate.

Two passes seen in the same detector frames, close together (``COMPANION_REACH`` plate widths) and
moving together (the same displacement and the same change of scale from one shared frame to the
next, inside one motion region) for ``COMPANION_FRAMES`` frames in a row are one vehicle: while one
of them is read, or has a read in flight, the other is not paid for, and a pass that ends unread
beside a read companion gives no ``unread`` event of its own. A shared frame where they part
undoes it. A new pass that comes up close to a pass being read, or read, waits (up to
``whole_wait_s``) until the two have either moved together or parted. And when the detector
loses one box of a moving vehicle that got no plate text and, in the same frame, finds a new one
beside it whose first step goes the same way (a grille seen as the car came in, then its plate),
the two are one vehicle too.

Two vehicles are not companions: side by side their plates are several plate widths apart (two
plates within two widths would be two cars touching), and a car behind another is at another
distance from the camera, so its plate does not keep the same offset and scale change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from .types import Box

COMPANION_REACH = 2.0  # centre to centre, in widths of the wider box: on one vehicle
COMPANION_FRAMES = 3  # shared frames in a row moving together before two passes are one vehicle
MIN_STEP = 0.1  # widths of the narrower box a step must move to tell motion from detector jitter
STEP_MATCH = 0.25  # the offset between them may drift by this share of the way they went ...
STEP_JITTER = 0.05  # ... or by this many widths of the narrower box (detector jitter)
HANDOFF_MAX_S = 0.3  # a box lost this recently (a detector frame or two) may hand its vehicle on
SAME_WAY = 0.8  # cosine between the new box's first step and the lost box's velocity: the same way
SCALE_MATCH = 0.1  # |difference of ln(width change)|: both boxes grow or shrink alike


class Pass(Protocol):
    """What this stage needs of a pass (``track.Track``)."""

    id: int
    box: Box  # its last sighting
    last_seen: float
    velocity: tuple[float, float]  # of its box centre, pixels a second
    moved: bool
    sightings: int
    done: bool
    text: bool
    in_flight: int


def _step(before: Box, after: Box) -> tuple[float, float]:
    (bx, by), (ax, ay) = before.centre, after.centre
    return ax - bx, ay - by


def together(a0: Box, a_now: Box, b0: Box, b_now: Box) -> bool:
    """Moved together from (a0, b0) to (a_now, b_now): as one rigid thing seen in perspective, the
    offset between the two boxes scales with them and nothing else, and both grow or shrink alike."""
    narrow = max(1, min(a_now.width, b_now.width, a0.width, b0.width))
    ga, gb = math.log(max(1, a_now.width) / max(1, a0.width)), math.log(max(1, b_now.width) / max(1, b0.width))
    scale = math.exp(ga if a0.width >= b0.width else gb)  # the wider box's is the surer
    (ox, oy), (nx, ny) = _step(a0, b0), _step(a_now, b_now)  # offset from a to b, then and now
    moved = max(math.hypot(*_step(a0, a_now)), math.hypot(*_step(b0, b_now)))
    kept = math.hypot(nx - ox * scale, ny - oy * scale) <= max(STEP_JITTER * narrow, STEP_MATCH * moved)
    return near(a_now, b_now) and kept and abs(ga - gb) <= SCALE_MATCH


def standing(a: Pass, a_now: Box, b: Pass, b_now: Box) -> bool:
    """Neither moved since their last shared frame (detector jitter aside)."""
    narrow = max(1, min(a_now.width, b_now.width, a.box.width, b.box.width))
    return max(math.hypot(*_step(a.box, a_now)), math.hypot(*_step(b.box, b_now))) < MIN_STEP * narrow


def near(a: Box, b: Box) -> bool:
    """Close enough to be on one vehicle: ``COMPANION_REACH`` widths of the wider box, centre to centre."""
    (ax, ay), (bx, by) = a.centre, b.centre
    return math.hypot(ax - bx, ay - by) <= COMPANION_REACH * max(a.width, b.width)


class Companions:
    """Which passes of one camera are one vehicle; owned by the upload gate (its thread)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[int, int], tuple[int, Box, Box]] = {}  # pair of pass ids (low first) ->
        # shared frames moving together, and their boxes where that began
        self._mates: dict[int, list[Pass]] = {}  # pass id -> its companions
        self._parted: set[tuple[int, int]] = set()  # pairs seen moving apart since they last moved together
        self._near: dict[int, list[Pass]] = {}  # pass id -> passes close to it in the latest frame
        self._heirs: dict[int, list[Pass]] = {}  # new pass id -> lost passes it may carry on

    def observe(self, seen: Sequence[tuple[Pass, Box]], regions: Sequence[Box] | None,
                lost: Sequence[Pass] = (), now: float = 0.0) -> None:
        """The passes seen in one detector frame (at ``now``) with their new boxes, before the passes
        take them, and the passes not seen in it. A pair's run of shared frames starts where they
        were first seen together moving; each frame is checked against that start, so a slow drift
        apart adds up and shows."""
        self._hand_off(seen, lost, now)
        self._near = {}
        for i, (a, a_now) in enumerate(seen):
            for b, b_now in seen[i + 1:]:
                if a.id > b.id:
                    (a, a_now), (b, b_now) = (b, b_now), (a, a_now)
                if near(a_now, b_now):
                    self._near.setdefault(a.id, []).append(b)
                    self._near.setdefault(b.id, []).append(a)
                key = (a.id, b.id)
                if not a.sightings or not b.sightings or a.last_seen != b.last_seen:
                    self._runs.pop(key, None)  # not seen together just before: start again
                    continue
                if standing(a, a_now, b, b_now):
                    continue  # tells nothing: a car waiting keeps its companions, two waiting cars gain none
                count, a0, b0 = self._runs.get(key, (0, a.box, b.box))
                one_region = regions is None or any(r.intersects(a_now) and r.intersects(b_now) for r in regions)
                if one_region and together(a0, a_now, b0, b_now):
                    self._runs[key] = (count + 1, a0, b0)
                    if count + 1 >= COMPANION_FRAMES:
                        self._link(a, b)
                        self._parted.discard(key)
                else:
                    self._runs.pop(key, None)
                    self._unlink(a, b)
                    self._parted.add(key)

    def _hand_off(self, seen: Sequence[tuple[Pass, Box]], lost: Sequence[Pass], now: float) -> None:
        """A new pass found beside a moving pass lost just now, with no plate text, carries its vehicle
        on once its first step goes the same way."""
        for a, a_now in seen:
            if not a.sightings:
                heirs = [b for b in lost if not (b.done or b.text) and b.moved and now - b.last_seen <= HANDOFF_MAX_S
                         and any(b.velocity) and near(a_now, b.box)]
                if heirs:
                    self._heirs[a.id] = heirs
            elif a.id in self._heirs:
                (sx, sy) = _step(a.box, a_now)
                if math.hypot(sx, sy) < MIN_STEP * max(1, a_now.width):
                    continue  # standing: wait for a step that tells
                for b in self._heirs.pop(a.id):
                    vx, vy = b.velocity
                    if (sx * vx + sy * vy) >= SAME_WAY * math.hypot(sx, sy) * math.hypot(vx, vy):
                        self._link(a, b)

    def of(self, p: Pass) -> list[Pass]:
        return self._mates.get(p.id, [])

    def read_beside(self, p: Pass) -> bool:
        """A companion of ``p`` was read (so its vehicle has its event)."""
        return any(m.done or m.text for m in self.of(p))

    def busy_beside(self, p: Pass) -> bool:
        """A companion of ``p`` is read or has a read in flight: ``p`` is not paid for now."""
        return any(m.done or m.in_flight for m in self.of(p))

    def undecided(self, p: Pass) -> bool:
        """In this frame ``p`` is close to a pass that is read or being read, and has not yet either
        moved together with it or parted from it."""
        return any((m.done or m.in_flight) and m not in self.of(p)
                   and (min(p.id, m.id), max(p.id, m.id)) not in self._parted for m in self._near.get(p.id, []))

    def forget(self, p: Pass) -> None:
        """``p`` ended: its pairs go (its companions keep their link to it for their own end)."""
        self._mates.pop(p.id, None)
        self._runs = {k: v for k, v in self._runs.items() if p.id not in k}
        self._parted = {k for k in self._parted if p.id not in k}
        self._heirs.pop(p.id, None)

    def _link(self, a: Pass, b: Pass) -> None:
        for x, y in ((a, b), (b, a)):
            mates = self._mates.setdefault(x.id, [])
            if y not in mates:
                mates.append(y)

    def _unlink(self, a: Pass, b: Pass) -> None:
        for x, y in ((a, b), (b, a)):
            if y in self._mates.get(x.id, []):
                self._mates[x.id].remove(y)
