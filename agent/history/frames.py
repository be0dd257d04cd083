"""The full frames of the latest uploads, JPEG-encoded, for the event store (``[history]
save_frames``). The pipeline shelves a frame when it uploads a crop of it; the store takes the
frame of an event's best read when it writes the event. Bounded: a few per camera, oldest out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2

from ..types import Frame, PlateCrop

PER_CAMERA = 4  # a pass uploads 2 crops by default; a pass decided after the next one began still finds its frame
JPEG_QUALITY = 80  # a 720p frame is ~100-200 kB


class FrameShelf:
    """Thread-safe: pipelines ``keep``, the store's thread ``take``s."""

    def __init__(self, per_camera: int = PER_CAMERA) -> None:
        self._per_camera = per_camera
        self._lock = threading.Lock()
        self._frames: dict[str, OrderedDict[int, bytes]] = {}

    def keep(self, frame: Frame, crop: PlateCrop) -> None:
        """The frame ``crop`` was cut from, encoded now (it is released with the next frame)."""
        ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        with self._lock:
            shelf = self._frames.setdefault(crop.camera_id, OrderedDict())
            shelf[crop.frame_seq] = bytes(buf)
            while len(shelf) > self._per_camera:
                shelf.popitem(last=False)

    def take(self, camera_id: str, frame_seq: int) -> bytes | None:
        with self._lock:
            return self._frames.get(camera_id, OrderedDict()).get(frame_seq)


__all__ = ["FrameShelf"]
