"""Upload gate, direction of travel: whether a pass's plate approaches (grows) or leaves (shrinks),
fitted on its width over time (log scale: the same for near and far plates)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .types import APPROACHING, LEAVING, UNKNOWN

DIRECTION_WINDOW_S = 1.5  # the recent sightings the trend is fitted on
DIRECTION_MIN_SAMPLES = 3
DIRECTION_MIN_SPAN_S = 0.2
DIRECTION_MIN_RATE = 0.15  # |d ln(width)/dt| per second; detector jitter on a still plate stays below
DIRECTION_MIN_CHANGE = 0.08  # and the fitted change over the window: 8% of the width


def direction_of(samples: Sequence[tuple[float, int]], now: float) -> str:
    """approaching (the plate grows), leaving (it shrinks) or unknown, from (time, width) samples."""
    pts = [(t, math.log(max(1, w))) for t, w in samples if now - t <= DIRECTION_WINDOW_S]
    if len(pts) < DIRECTION_MIN_SAMPLES:
        return UNKNOWN
    span = pts[-1][0] - pts[0][0]
    if span < DIRECTION_MIN_SPAN_S:
        return UNKNOWN
    mt = sum(t for t, _ in pts) / len(pts)
    mv = sum(v for _, v in pts) / len(pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var if var > 0 else 0.0
    if slope >= DIRECTION_MIN_RATE and slope * span >= DIRECTION_MIN_CHANGE:
        return APPROACHING
    if slope <= -DIRECTION_MIN_RATE and -slope * span >= DIRECTION_MIN_CHANGE:
        return LEAVING
    return UNKNOWN
