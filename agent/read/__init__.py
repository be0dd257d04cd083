"""Stage 5: the plate reader. A crop in, its plates (text, scores, boxes in frame pixels) out.

Backends are listed in ``READERS``: the Plate Recognizer cloud API and the on-premise SDK. The
``ReadWorker`` (worker.py) runs a reader on its own thread with rate limits, retries and the outbox.
"""

from __future__ import annotations

from typing import Protocol

from ..types import PlateCrop, PlateRead
from .errors import ReaderError
from .parse import Usage


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


from .client import CloudReader, SdkReader  # noqa: E402  (they implement the Protocol above)
from .probe import read_image, read_to_dict  # noqa: E402

READERS: dict[str, type[CloudReader] | type[SdkReader]] = {"cloud": CloudReader, "sdk": SdkReader}

__all__ = [
    "READERS",
    "CloudReader",
    "PlateReader",
    "ReaderError",
    "SdkReader",
    "Usage",
    "read_image",
    "read_to_dict",
]
