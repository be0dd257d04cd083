"""Time spent per stage (decode, motion, detector, crop, read, sinks), summed: wall time from
``perf_counter`` and the calling thread's CPU time from ``thread_time``, for ``/status`` and the
bench's cost table. A few microseconds a call.

CPU is the calling thread's only: FFmpeg's decoder threads and TFLite's worker threads are not in
it (the bench reads the whole process from /proc next to it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StageTimes:
    """Calls, wall and CPU seconds per stage name; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 cpu: Callable[[], float] = time.thread_time) -> None:
        self._clock = clock
        self._cpu = cpu
        self._lock = threading.Lock()
        self._since = clock()
        self._sums: dict[str, list[float]] = {}  # stage -> [calls, wall_s, cpu_s]

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        w0, c0 = self._clock(), self._cpu()
        try:
            yield
        finally:
            self.add(stage, self._clock() - w0, self._cpu() - c0)

    def add(self, stage: str, wall_s: float, cpu_s: float) -> None:
        with self._lock:
            s = self._sums.setdefault(stage, [0, 0.0, 0.0])
            s[0] += 1
            s[1] += wall_s
            s[2] += cpu_s

    def snapshot(self) -> dict[str, object]:
        """``{stage: {calls, ms, cpu_ms}}`` and ``since_s`` (seconds these sums cover)."""
        with self._lock:
            out: dict[str, object] = {
                stage: {"calls": int(n), "ms": round(1000 * w, 1), "cpu_ms": round(1000 * c, 1)}
                for stage, (n, w, c) in sorted(self._sums.items())
            }
        out["since_s"] = round(self._clock() - self._since, 1)
        return out


__all__ = ["StageTimes"]
