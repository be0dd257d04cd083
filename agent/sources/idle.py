"""Keyframes only while nothing moves: one camera's motion state, from its pipeline to its source,
and what the source made of it (decoding mode, keyframes decoded, packets skipped, wakes).

One-way: the pipeline thread calls ``set_idle``; the camera's reader thread (one connection after
another) reads ``idle`` and records what it decoded; the wake time and the counters are shared
under a lock, the rest are plain values each side assigns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

FULL, KEYFRAMES = "full", "keyframes"


class IdleDecoding:
    """Created once per camera by the wiring; it outlives the camera's connections."""

    def __init__(self, enabled: bool = True, backend: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled  # the camera's ``idle_keyframes``, where its backend can do it
        self.backend = backend  # what reads the camera (pyav | opencv), for /status
        self._clock = clock
        self._lock = threading.Lock()  # the counters: written by the reader, read by /status
        self._idle = False  # written by the pipeline thread only
        self._woken_at: float | None = None  # when the pipeline asked for full decoding again
        self.mode = FULL  # what the source does now; written by the reader thread only
        self._counts = {"keyframes": 0, "packets_skipped": 0, "wakes": 0, "catch_up_packets": 0}
        self._catch_up_ms: list[float] = []  # per wake: decoding the packets kept since the keyframe
        self._wake_ms: list[float] = []  # per wake: from the pipeline's request to the current frame

    # ------------------------------------------------------------ the pipeline's side

    def set_idle(self, idle: bool) -> None:
        """The camera's motion gate has seen nothing for its hold time (True), or sees motion."""
        if idle == self._idle:
            return
        if not idle:
            with self._lock:
                self._woken_at = self._clock()
        self._idle = idle

    # ------------------------------------------------------------ the source's side

    @property
    def idle(self) -> bool:
        """Decode only keyframes now."""
        return self.enabled and self._idle

    def decoding(self, mode: str) -> None:
        self.mode = mode

    def keyframe(self) -> None:
        with self._lock:
            self._counts["keyframes"] += 1

    def skipped(self) -> None:
        with self._lock:
            self._counts["packets_skipped"] += 1

    def woke(self, catch_up_s: float, packets: int) -> None:
        """Full decoding resumed: ``packets`` kept since the last keyframe were decoded in ``catch_up_s``."""
        with self._lock:
            asked, self._woken_at = self._woken_at, None
            self._counts["wakes"] += 1
            self._counts["catch_up_packets"] += packets
            self._catch_up_ms.append(1000 * catch_up_s)
            if asked is not None:
                self._wake_ms.append(1000 * (self._clock() - asked))
            del self._catch_up_ms[:-100], self._wake_ms[:-100]

    def stats(self) -> dict[str, object]:
        """``mode`` (full | keyframes), counts, and per wake the catch-up decode and request-to-frame
        time in ms (mean and max of the last 100 wakes)."""
        with self._lock:
            doc: dict[str, object] = {"backend": self.backend, "mode": self.mode, "idle_keyframes": self.enabled,
                                      **self._counts}
            for name, values in (("catch_up_ms", self._catch_up_ms), ("wake_ms", self._wake_ms)):
                doc[f"{name}_mean"] = round(sum(values) / len(values), 1) if values else None
                doc[f"{name}_max"] = round(max(values), 1) if values else None
        return doc


__all__ = ["FULL", "KEYFRAMES", "IdleDecoding"]
