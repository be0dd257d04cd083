"""The reader stage when ``reader.type = "none"``: every crop is answered at once, on the caller's
thread, with one text-less read of its detection; events then carry the on-device detection only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..types import PlateCrop, PlateRead

if TYPE_CHECKING:
    from . import Answer


class DetectOnlyReader:
    """A ``ReadStage`` without a plate reader: nothing is uploaded, nothing waits."""

    def __init__(self, on_answer: Answer, clock: Callable[[], float] = time.monotonic) -> None:
        self._on_answer = on_answer
        self._clock = clock

    def submit(self, crop: PlateCrop) -> bool:
        d = crop.detection
        read = PlateRead(
            camera_id=crop.camera_id,
            plate="",
            score=0.0,
            dscore=d.score,
            box=d.box,
            wall_time=crop.wall_time,
            mono_time=crop.mono_time,
            crop=crop,
        )
        self._on_answer(crop, [read])
        return True

    def idle(self) -> bool:
        return True

    @property
    def last_progress(self) -> float:
        return self._clock()  # it never waits on anything, so it never stalls

    def stats(self) -> None:
        return None

    def close(self, timeout_s: float = 0.0) -> None:
        pass


__all__ = ["DetectOnlyReader"]
