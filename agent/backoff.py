"""Reconnect and retry delays, one formula for every loop that retries (capture, reader, webhooks):
capped exponential backoff with "equal jitter", so many agents never retry in step against one
recovering camera or service."""

from __future__ import annotations

import random
from collections.abc import Callable

MAX_DOUBLINGS = 64  # 2**64 times any first delay is past every cap; also keeps the float finite


def backoff_s(attempt: int, first_s: float, cap_s: float, rng: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (0 = the first retry).

    ``d = min(cap_s, first_s * 2**attempt)``, then uniform in ``[d/2, d]`` from ``rng()`` in [0, 1):
    never above ``cap_s``, never below half the nominal delay.
    """
    d = min(cap_s, first_s * 2.0 ** min(max(attempt, 0), MAX_DOUBLINGS))
    return d / 2 + rng() * d / 2


__all__ = ["backoff_s"]
