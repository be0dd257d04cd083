"""One detector (or a small pool) for every camera: each camera's pipeline asks for a turn, and
turns go round-robin over the cameras waiting, so a camera that always has motion (a tree in the
wind) cannot starve one with a car in view.

A camera's pipeline thread blocks in ``detect`` until its turn, then runs the model itself: a camera
has at most one frame waiting (the newest it gated through motion), so there is never a backlog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import DetectorError
from ..types import Box, Detection, Image

if TYPE_CHECKING:
    from ..config import DetectorConfig
    from . import PlateDetector


class SharableDetector(Protocol):
    """A loaded model that per-camera views can share (one at a time)."""

    def detect(self, image: Image, roi: Box | None = None) -> list[Detection]: ...

    def for_camera(self, cfg: DetectorConfig) -> PlateDetector:
        """A detector using this loaded model with a camera's own settings (score, width, roi)."""
        ...

    def close(self) -> None: ...


class Turns:
    """Who runs next: round-robin over the cameras waiting, in registration order, starting after
    the camera served last. Not thread-safe: ``SharedDetectors`` calls it under its lock."""

    def __init__(self, cameras: Sequence[str], slots: int) -> None:
        self.order = list(cameras)
        self.free = list(range(slots))
        self.waiting: set[str] = set()
        self.granted: dict[str, int] = {}  # camera -> slot it may use now
        self._next = 0  # index in ``order`` where the search for the next turn starts

    def request(self, camera: str) -> None:
        if camera in self.waiting or camera in self.granted:
            raise DetectorError(f"camera {camera!r} already asked for the detector")
        self.waiting.add(camera)
        self._grant()

    def release(self, camera: str) -> int:
        """``camera`` is done with its slot; the slot goes to the next camera waiting."""
        slot = self.granted.pop(camera)
        self.free.append(slot)
        self._grant()
        return slot

    def withdraw(self, camera: str) -> None:
        """``camera`` stops waiting (closing); a slot granted meanwhile is handed on."""
        self.waiting.discard(camera)
        if camera in self.granted:
            self.release(camera)

    def _grant(self) -> None:
        n = len(self.order)
        while self.free and self.waiting:
            for k in range(n):
                i = (self._next + k) % n
                cam = self.order[i]
                if cam in self.waiting:
                    self.waiting.discard(cam)
                    self.granted[cam] = self.free.pop(0)
                    self._next = (i + 1) % n
                    break


@dataclass
class WaitStats:
    """One camera's use of the shared detector (monotonic seconds, summed)."""

    calls: int = 0
    wait_s: float = 0.0
    wait_max_s: float = 0.0
    busy_s: float = 0.0  # holding the detector: the model and its pre- and post-processing


class SharedDetectors:
    """A pool of loaded models (``slots``, usually one) shared by the cameras through ``Turns``.

    ``camera(id, cfg)`` gives each camera its ``PlateDetector``. Close the cameras' detectors
    first, then this: a model still in use is closed when its camera gives it back.
    """

    def __init__(
        self,
        models: Sequence[SharableDetector],
        cameras: Sequence[str],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not models:
            raise DetectorError("no detector to share")
        self.models = list(models)
        self.clock = clock
        self._turns = Turns(cameras, len(self.models))
        self._cond = threading.Condition()
        self._closed = False
        self._stats = {cam: WaitStats() for cam in cameras}

    def camera(self, camera_id: str, cfg: DetectorConfig) -> CameraDetector:
        if camera_id not in self._stats:
            raise DetectorError(f"camera {camera_id!r} was not registered with the shared detector")
        return CameraDetector(self, camera_id, [m.for_camera(cfg) for m in self.models])

    def acquire(self, camera_id: str) -> int:
        """Block until it is ``camera_id``'s turn; the slot (model index) it may use."""
        start = self.clock()
        with self._cond:
            if self._closed:
                raise DetectorError("detector is closed")
            self._turns.request(camera_id)
            try:
                while camera_id not in self._turns.granted:
                    if self._closed:
                        raise DetectorError("detector is closed")
                    self._cond.wait()
            except BaseException:
                self._turns.withdraw(camera_id)
                self._cond.notify_all()
                raise
            slot = self._turns.granted[camera_id]
            waited = self.clock() - start
            st = self._stats[camera_id]
            st.calls += 1
            st.wait_s += waited
            st.wait_max_s = max(st.wait_max_s, waited)
            return slot

    def release(self, camera_id: str, busy_s: float) -> None:
        with self._cond:
            slot = self._turns.release(camera_id)
            self._stats[camera_id].busy_s += busy_s
            if self._closed:
                self.models[slot].close()
            self._cond.notify_all()

    def close(self) -> None:
        """Idempotent. Waiting cameras get DetectorError; a model in use is closed on release."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            in_use = set(self._turns.granted.values())
            for slot, model in enumerate(self.models):
                if slot not in in_use:
                    model.close()
            self._cond.notify_all()

    def stats(self, camera_id: str | None = None) -> dict[str, object]:
        """One camera's figures, or the pool's (models, cameras waiting now, busy time)."""
        with self._cond:
            if camera_id is not None:
                st = self._stats[camera_id]
                return {"detector_calls": st.calls,
                        "detector_wait_ms_mean": round(1000 * st.wait_s / st.calls, 2) if st.calls else 0.0,
                        "detector_wait_ms_max": round(1000 * st.wait_max_s, 2),
                        "detector_ms_total": round(1000 * st.busy_s, 1)}
            return {"models": len(self.models), "waiting": sorted(self._turns.waiting),
                    "busy_ms_total": round(1000 * sum(s.busy_s for s in self._stats.values()), 1)}


class CameraDetector:
    """One camera's ``PlateDetector``: waits for its turn at the shared model, then runs it."""

    def __init__(self, pool: SharedDetectors, camera_id: str, views: Sequence[PlateDetector]) -> None:
        self.pool = pool
        self.camera_id = camera_id
        self._views = list(views)
        self._closed = False

    def detect(self, image: Image, roi: Box | None = None) -> list[Detection]:
        if self._closed:
            raise DetectorError("detector is closed")
        slot = self.pool.acquire(self.camera_id)
        start = self.pool.clock()
        try:
            return self._views[slot].detect(image, roi)
        finally:
            self.pool.release(self.camera_id, self.pool.clock() - start)

    def stats(self) -> dict[str, object]:
        return self.pool.stats(self.camera_id)

    def close(self) -> None:
        """Idempotent; the shared model stays open for the other cameras."""
        self._closed = True


__all__ = ["CameraDetector", "SharableDetector", "SharedDetectors", "Turns", "WaitStats"]
