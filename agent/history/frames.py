"""The full frames of the latest uploads, JPEG-encoded, for the event store (``[history]
save_frames``). The pipeline shelves a frame when it uploads a crop of it; the store takes the
frame of an event's best read when it writes the event. Bounded: a few per camera, oldest out.

The reader can answer, and the event reach the store, before the pipeline has encoded the frame
(it encodes after the upload is on its way, so the gate does not wait for it): the pipeline says
it ``expect``s the frame before it submits the crop and ``forget``s it once it has kept it (or
did not upload after all); ``take`` waits for an expected frame until then.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2

from ..types import Frame, PlateCrop

PER_CAMERA = 4  # a pass uploads 2 crops by default; a pass decided after the next one began still finds its frame
JPEG_QUALITY = 80  # a 720p frame is ~100-200 kB
PENDING_WAIT_S = 2.0  # the longest the store waits for an expected frame (a 720p encode takes ~10 ms)


class FrameShelf:
    """Thread-safe: pipelines ``keep``, the store's thread ``take``s."""

    def __init__(self, per_camera: int = PER_CAMERA) -> None:
        self._per_camera = per_camera
        self._lock = threading.Lock()
        self._frames: dict[str, OrderedDict[int, bytes]] = {}
        self._pending: set[tuple[str, int]] = set()  # (camera, frame seq) submitted, not yet kept
        self._changed = threading.Condition(self._lock)

    def expect(self, crop: PlateCrop) -> None:
        """``crop`` is about to be uploaded: its frame follows with ``keep`` (or ``forget``)."""
        with self._lock:
            self._pending.add((crop.camera_id, crop.frame_seq))

    def forget(self, crop: PlateCrop) -> None:
        """Nothing more comes for ``crop``: its frame was kept, or none will be (the upload did not go)."""
        with self._changed:
            self._pending.discard((crop.camera_id, crop.frame_seq))
            self._changed.notify_all()

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

    def take(self, camera_id: str, frame_seq: int, wait_s: float = PENDING_WAIT_S) -> bytes | None:
        """The frame, waiting up to ``wait_s`` for one that is expected but not kept yet."""
        with self._changed:
            self._changed.wait_for(lambda: (camera_id, frame_seq) not in self._pending, wait_s)
            return self._frames.get(camera_id, OrderedDict()).get(frame_seq)


__all__ = ["FrameShelf"]
