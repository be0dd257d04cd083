"""A settable clock for the ``clock=`` / ``wall=`` / ``mono=`` seams: tests move ``t``, nothing sleeps.

A thread that owns a timer (the relay, a capture supervisor, the reader) reads the clock on each
turn; ``set(t)`` then ``wait_reads(thread)`` proves that thread has looked at the new time, so a
test can assert what it did (or did not do) at exactly that time without a sleep.
"""

from __future__ import annotations

import collections
import threading


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self._cond = threading.Condition()
        self._reads: collections.Counter[str] = collections.Counter()  # per thread name, since set()

    def __call__(self) -> float:
        with self._cond:
            self._reads[threading.current_thread().name] += 1
            self._cond.notify_all()
            return self.t

    def set(self, t: float) -> None:
        with self._cond:
            self.t = t
            self._reads.clear()

    def wait_reads(self, thread: str, n: int = 2, timeout_s: float = 10.0) -> None:
        """Wait until the thread named ``thread`` has read the clock ``n`` times since the last ``set``.

        Two reads by a loop that reads once per turn mean one whole turn ran at the new time.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._reads[thread] >= n, timeout_s):
                raise AssertionError(f"thread {thread!r} did not read the clock {n} times at t={self.t}")
