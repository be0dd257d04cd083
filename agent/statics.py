"""Upload gate, part 2: static objects — plate-like things that stay put (a parked car, a sign, a poster).

Each is remembered by place (its box) and look (a small grey thumbnail), is never paid for again
until it moves or ``static_ttl_s`` passes, and survives a restart in a small JSON file. Stored
monotonic times carry the boot id; after a reboot an object keeps its state but starts its TTL
again, and counts only where a detection at the same place with the same look confirms it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .types import Box, Image

logger = logging.getLogger(__name__)

Look = npt.NDArray[np.uint8]

LOOK_SIZE = (32, 8)  # width, height: a plate's proportions; enough to tell two plates apart
MAX_OBJECTS = 64  # per camera; the least recently seen go first
SAME_PLACE_IOU = 0.6  # a detection this close to a static object's box is at its place
STATES = ("unread", "not_a_plate", "read")
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def look_of(image: Image, box: Box) -> Look:
    """A contrast-stretched grey thumbnail of ``box`` (clamped to the image): what the plate looks like."""
    h, w = image.shape[:2]
    seen = box.clamp(w, h)
    if seen.area == 0:
        return np.zeros((LOOK_SIZE[1], LOOK_SIZE[0]), np.uint8)
    patch = seen.pixels(image)
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    small = cv2.resize(grey, LOOK_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    # blurred: a box jittering by a pixel or two looks the same
    small = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), np.float32)
    lo, hi = float(small.min()), float(small.max())
    # stretched: a cloud or dusk changes brightness, not the look
    scaled = (small - lo) * (255.0 / (hi - lo)) if hi - lo >= 8 else np.zeros_like(small)
    return np.asarray(np.clip(scaled + 0.5, 0, 255), np.uint8)


def look_diff(a: Look, b: Look) -> float:
    """0 (identical) .. 1: mean absolute difference of two thumbnails, the best of one-pixel shifts.

    Measured on drawn plates (32x8, with noise, +-4 px shifts and +-30 grey levels): the same
    plate <= 0.047, two different plates >= 0.060.
    """
    if a.shape != b.shape:
        return 1.0
    h, w = a.shape
    ai, bi = a.astype(np.int16), b.astype(np.int16)
    best = 1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            pa = ai[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            pb = bi[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            best = min(best, float(np.mean(np.abs(pa - pb))) / 255.0)
    return best


def boot_id() -> str:
    try:
        return Path(BOOT_ID_PATH).read_text(encoding="ascii").strip()
    except OSError:
        return ""


@dataclass(eq=False)
class StaticObject:
    box: Box
    look: Look
    state: str  # unread | not_a_plate | read
    since: float  # monotonic: became static (or was loaded after a reboot)
    last_seen: float
    confirmed: bool = True  # False: loaded from disk, not seen at its place with its look since
    hits: int = 0  # detections matched (and so not paid for)


class StaticObjects:
    """One camera's static objects. Owned by its pipeline thread; ``snapshot()`` is safe from any thread."""

    def __init__(
        self,
        ttl_s: float,
        max_look_diff: float,
        path: Path | None = None,
        boot: Callable[[], str] = boot_id,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_look_diff = max_look_diff
        self.path = path
        self._boot = boot()
        self._objects: list[StaticObject] = []
        self._loaded = False

    # ------------------------------------------------------------ matching

    def match(self, box: Box, look: Look, now: float) -> StaticObject | None:
        """The static object at ``box``'s place with ``look``'s look, if any (expired ones are dropped)."""
        self.load(now)
        self._expire(now)
        best, best_iou = None, SAME_PLACE_IOU
        for obj in self._objects:
            iou = obj.box.iou(box)
            if iou >= best_iou and look_diff(obj.look, look) <= self.max_look_diff:
                best, best_iou = obj, iou
        if best is not None:
            best.last_seen = now
            best.hits += 1
            if not best.confirmed:
                best.confirmed = True
                logger.info("static object confirmed after restart box=%s state=%s", best.box.as_dict(), best.state)
        return best

    def add(self, box: Box, look: Look, state: str, now: float) -> StaticObject:
        self.load(now)
        obj = StaticObject(box, look, state, now, now)
        self._objects.append(obj)
        if len(self._objects) > MAX_OBJECTS:
            self._objects.sort(key=lambda o: o.last_seen)
            del self._objects[: len(self._objects) - MAX_OBJECTS]
        logger.info("static object box=%s state=%s", box.as_dict(), state)
        self._save(now)
        return obj

    def set_state(self, obj: StaticObject, state: str, now: float) -> None:
        if obj.state != state:
            obj.state = state
            self._save(now)

    def remove(self, obj: StaticObject, now: float) -> None:
        """It moved: from now on it is a vehicle again."""
        if obj in self._objects:
            self._objects.remove(obj)
            logger.info("static object moved box=%s state=%s", obj.box.as_dict(), obj.state)
            self._save(now)

    def _expire(self, now: float) -> None:
        old = [o for o in self._objects if now - o.since > self.ttl_s]
        if old:
            self._objects = [o for o in self._objects if o not in old]
            self._save(now)

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """For /status: place, state, how long static, when last seen."""
        return [
            {
                "box": o.box.as_dict(),
                "state": o.state,
                "static_for_s": round(now - o.since, 1),
                "last_seen_s_ago": round(now - o.last_seen, 1),
                "confirmed": o.confirmed,
                "hits": o.hits,
            }
            for o in list(self._objects)
        ]

    def __len__(self) -> int:
        return len(self._objects)

    # ------------------------------------------------------------ persistence

    def _save(self, now: float) -> None:
        if self.path is None:
            return
        doc = {
            "boot_id": self._boot,
            "objects": [
                {
                    "box": [o.box.x1, o.box.y1, o.box.x2, o.box.y2],
                    "look": o.look.tolist(),
                    "state": o.state,
                    "since_mono": o.since,
                    "confirmed": o.confirmed,
                }
                for o in self._objects
            ],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as err:  # the gate goes on; only the memory across a restart is lost
            logger.warning("cannot save static objects path=%s error=%s", self.path, err)

    def load(self, now: float) -> None:
        """Read the file once, on first use (nothing happens in the constructor)."""
        if self._loaded:
            return
        self._loaded = True
        if self.path is None or not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            same_boot = bool(self._boot) and doc.get("boot_id") == self._boot
            for item in doc.get("objects", [])[:MAX_OBJECTS]:
                look = np.asarray(item["look"], np.uint8)
                if look.shape != (LOOK_SIZE[1], LOOK_SIZE[0]) or item["state"] not in STATES:
                    continue
                # monotonic times mean nothing after a reboot: the TTL starts again, and the object
                # counts only once a detection at its place with its look confirms it
                since = float(item["since_mono"]) if same_boot else now
                confirmed = bool(item.get("confirmed", True)) and same_boot
                self._objects.append(StaticObject(Box(*map(int, item["box"])), look, item["state"],
                                                  since, since, confirmed))
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("ignoring unreadable static objects file path=%s error=%s", self.path, err)
            self._objects = []
        if self._objects:
            logger.info("static objects loaded path=%s count=%d", self.path, len(self._objects))
