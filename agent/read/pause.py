"""When the reader service stops answering, uploads pause: crops go to the outbox and one probe is sent
after the pause. ``unavailable`` (5xx, timeouts, refused connections) backs off, longer after each failure;
``forbidden`` (403: a wrong token or no credits left) waits a fixed ``forbidden_backoff_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..config import ReaderConfig
from .errors import ReaderError

logger = logging.getLogger(__name__)


class Pause:
    """The read worker's pause state; used from the reader thread only (``forbidden_until`` may be read
    from any thread: one attribute, replaced whole)."""

    def __init__(self, cfg: ReaderConfig, clock: Callable[[], float], wall: Callable[[], float],
                 backoff: Callable[[int], float]) -> None:
        self._cfg = cfg
        self._clock = clock
        self._wall = wall
        self._backoff = backoff  # delay after the n-th failure in a row
        self.state = ""  # "" | "unavailable" | "forbidden"
        self.resume_at = 0.0  # clock time of the next probe while paused
        self.forbidden_until: float | None = None  # wall time, for /status
        self._since = 0.0
        self._failures = 0

    def unavailable(self, err: ReaderError) -> None:
        self._failures += 1
        delay = self._backoff(self._failures)
        if not self.state:
            self._since = self._clock()
            logger.warning(
                "reader: service unavailable (%s); parking crops in the outbox, retry in %.1f s",
                err,
                delay,
            )
        self.state = "unavailable"
        self.resume_at = self._clock() + delay

    def forbidden(self, err: ReaderError) -> None:
        period = self._cfg.forbidden_backoff_s
        if self.state != "forbidden":
            self._since = self._clock()
        self.state = "forbidden"
        self.resume_at = self._clock() + period
        self.forbidden_until = self._wall() + period
        # once per period: the next attempt is a single probe after the pause
        logger.warning(
            "reader: %s (wrong token or no credits); pausing uploads for %.0f s", err, period
        )

    def end(self) -> None:
        """The service answered: uploads go on at once."""
        if not self.state:
            return
        logger.info("reader: service answers again after %.0f s (was %s)", self._clock() - self._since, self.state)
        self.state, self._failures = "", 0
        self.forbidden_until = None


__all__ = ["Pause"]
