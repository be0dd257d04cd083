"""Rate-limited log lines: a flood of the same event (junk MQTT commands, a failing callback) costs
one line per interval, each saying how many were left out since the last one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """``log(level, msg, *args)`` writes at most one line per ``every_s``; the next line written
    ends with ``suppressed=N``, the lines left out in between."""

    def __init__(self, logger: logging.Logger, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._every_s = every_s
        self._clock = clock
        self._last = float("-inf")
        self.suppressed = 0  # since the last line written

    def __call__(self, level: int, msg: str, *args: object, exc_info: bool = False) -> bool:
        """True when the line was written (with the current exception's traceback when ``exc_info``)."""
        now = self._clock()
        if now - self._last < self._every_s:
            self.suppressed += 1
            return False
        self._last = now
        self._logger.log(level, msg + " suppressed=%d", *args, self.suppressed, exc_info=exc_info)
        self.suppressed = 0
        return True


__all__ = ["RateLimitedLog"]
