"""What the reader service allows: its request rate (a token bucket) and its upload size (a smaller
copy after a 413)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


class TokenBucket:
    """At most ``rate_per_s`` takes per second, no bursts; 0 = unlimited.

    Spaced 10% more than 1/rate: the server counts arrivals, and two uploads sent
    exactly 1/rate apart can arrive closer than that.
    """

    def __init__(self, rate_per_s: float, clock: Callable[[], float], margin: float = 1.1) -> None:
        self.interval = margin / rate_per_s if rate_per_s > 0 else 0.0
        self._clock = clock
        self._next = float("-inf")

    def delay(self) -> float:
        """Seconds until a take is allowed (0 = now)."""
        return max(0.0, self._next - self._clock())

    def take(self) -> None:
        self._next = max(self._next, self._clock()) + self.interval

    def hold(self, seconds: float) -> None:
        """Nothing before ``seconds`` from now (the server's 429 hint)."""
        self._next = max(self._next, self._clock() + seconds)


def shrink_jpeg(jpeg: bytes, factor: float = 0.5, quality: int = 80) -> bytes | None:
    """The same picture at ``factor`` of its size, re-encoded; None if it cannot be decoded."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, int(w * factor)), max(1, int(h * factor))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(buf) if ok else None


__all__ = ["TokenBucket", "shrink_jpeg"]
