"""Stage 5: the plate reader. A crop in, its plates (text, scores, boxes in frame pixels) out.

Backends are listed in ``READERS``: the Plate Recognizer cloud API and the on-premise SDK. The
``ReadWorker`` (worker.py) runs a reader on its own thread with rate limits, retries and the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..types import PlateCrop, PlateRead
from .errors import ReaderError
from .parse import Usage

Answer = Callable[[PlateCrop, Sequence[PlateRead] | None], None]
"""Everything read from one crop, delivered once: the plates, an empty list (the reader found
none), or None (no answer now: the crop was parked or dropped). Always the dispatcher's ``answer``."""


class PlateReader(Protocol):
    """Reads plates in one crop. Blocking; used from one thread at a time."""

    def read(self, crop: PlateCrop) -> list[PlateRead]:
        """Plates in ``crop`` in frame pixels; raises a ``ReaderError`` subclass on failure."""
        ...

    def usage(self) -> Usage | None:
        """Lookups used/limit now (one HTTP call); None when the backend has no usage API."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...


class ReadStage(Protocol):
    """The reader stage as the pipelines and the service see it: crops in, one ``Answer`` per crop out."""

    def submit(self, crop: PlateCrop) -> bool:
        """Take a crop without blocking; False (counted) when it cannot be taken."""
        ...

    def idle(self) -> bool:
        """Every crop taken was answered, parked or dropped."""
        ...

    @property
    def last_progress(self) -> float:
        """Monotonic time of the stage's last turn (the watchdog checks that it moves)."""
        ...

    def stats(self) -> dict[str, Any] | None:
        """The reader's status figures; None when no plate reader is configured."""
        ...

    def close(self, timeout_s: float = ...) -> None:
        """Stop; idempotent."""
        ...


from .client import CloudReader, SdkReader  # noqa: E402  (they implement the Protocol above)
from .detect_only import DetectOnlyReader  # noqa: E402
from .probe import read_image, read_to_dict  # noqa: E402

READERS: dict[str, type[CloudReader] | type[SdkReader]] = {"cloud": CloudReader, "sdk": SdkReader}

__all__ = [
    "READERS",
    "Answer",
    "CloudReader",
    "DetectOnlyReader",
    "PlateReader",
    "ReadStage",
    "ReaderError",
    "SdkReader",
    "Usage",
    "read_image",
    "read_to_dict",
]
