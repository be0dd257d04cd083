"""The console's live view: each camera's last processed frame with its zones and latest detections,
as a JPEG made only on request. The pipelines offer every frame they process; a frame is kept (a
reference, no copy) only while someone has asked within ``WATCH_S``, and encoded at most once per
``MIN_INTERVAL_S`` however many pages poll: nothing runs while nobody looks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import Zone
from ..types import Box, Frame, Image

WATCH_S = 10.0  # a page polls every second or two: frames are kept this long after the last ask
MIN_INTERVAL_S = 0.5  # one encode per camera per this, shared by every page
DETECTIONS_S = 3.0  # detections stay drawn this long (a car is gone from the frame before they change)
WIDTH_PX = 640  # the picture is scaled down to this width: a page shows it small, a Pi encodes it fast
QUALITY = 70
ZONE_COLOURS = {"include": (80, 200, 80), "exclude": (60, 60, 220)}  # BGR
DETECTION_COLOUR = (0, 200, 255)


@dataclass
class _Camera:
    zones: tuple[Zone, ...]
    frame: Frame | None = None
    boxes: tuple[Box, ...] = ()
    boxes_at: float = float("-inf")  # monotonic
    jpeg: bytes = b""
    jpeg_seq: int = -1
    jpeg_at: float = float("-inf")


class LiveFrames:
    """Thread-safe: pipeline threads ``offer``, HTTP threads ask for ``jpeg``."""

    def __init__(self, zones: Mapping[str, Iterable[Zone]], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cams = {cid: _Camera(tuple(z)) for cid, z in zones.items()}
        self._watched_until = float("-inf")
        self._holding = False  # some frame is kept
        self.encodes = 0  # JPEGs made (the tests count them)

    def offer(self, frame: Frame, boxes: Sequence[Box]) -> None:
        """A processed frame and what was detected in it (cheap: a reference while watched, else nothing)."""
        now = self._clock()
        if now >= self._watched_until:
            if self._holding:  # the last page closed: let the frame go
                self.close()
            return
        with self._lock:
            seen = self._cams.get(frame.camera_id)
            if seen is None:
                return
            self._holding = True
            seen.frame = frame
            if boxes:
                seen.boxes, seen.boxes_at = tuple(boxes), now

    def cameras(self) -> list[str]:
        return list(self._cams)

    def jpeg(self, camera_id: str) -> bytes | None:
        """The camera's last frame as a JPEG (KeyError: no such camera; None: no frame yet, one will be
        kept from now on)."""
        now = self._clock()
        with self._lock:
            cam = self._cams[camera_id]
            if now >= self._watched_until:  # nobody looked for a while: what is kept is stale
                cam.frame = None
            self._watched_until = now + WATCH_S
            frame = cam.frame
            if frame is None:
                return None
            if cam.jpeg and (cam.jpeg_seq == frame.seq or now - cam.jpeg_at < MIN_INTERVAL_S):
                return cam.jpeg
            boxes = cam.boxes if now - cam.boxes_at <= DETECTIONS_S else ()
            # encoded under the lock: two pages asking at once make one JPEG, not two
            cam.jpeg, cam.jpeg_seq, cam.jpeg_at = draw(frame.image, cam.zones, boxes), frame.seq, now
            self.encodes += 1
            return cam.jpeg

    def close(self) -> None:
        """Let every kept frame and JPEG go (also when the last page closed)."""
        with self._lock:
            for cam in self._cams.values():
                cam.frame, cam.jpeg = None, b""
            self._holding = False


def draw(image: Image, zones: Sequence[Zone], boxes: Sequence[Box]) -> bytes:
    """A scaled-down copy with the zones (normalised polygons) and detection boxes drawn, as JPEG."""
    h, w = image.shape[:2]
    scale = min(1.0, WIDTH_PX / w)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
        if scale < 1.0 else image.copy()
    sh, sw = small.shape[:2]
    for zone in zones:
        pts = np.array([[round(x * sw), round(y * sh)] for x, y in zone.polygon], np.int32)
        cv2.polylines(small, [pts], True, ZONE_COLOURS.get(zone.kind, (200, 200, 200)), 2)
    for b in boxes:
        cv2.rectangle(small, (round(b.x1 * scale), round(b.y1 * scale)), (round(b.x2 * scale) - 1,
                      round(b.y2 * scale) - 1), DETECTION_COLOUR, 2)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        raise ValueError("cannot encode the live frame")
    return bytes(buf)


__all__ = ["LiveFrames", "draw"]
