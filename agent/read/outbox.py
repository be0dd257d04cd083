"""Durable outbox for crops that could not be read yet: a crop codec over the agent's sqlite outbox.

FIFO across restarts, bounded (oldest dropped first and counted). A crop leaves only when the worker
``delete``s it after its read was delivered: each parked crop is handed on at least once, and twice
only when the process dies between the delivery and the delete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import outbox as store
from ..config import StorageConfig, state_dir
from ..outbox import OutboxError
from ..types import Box, Detection, PlateCrop

FILENAME = "reader-outbox.sqlite3"


def _meta(crop: PlateCrop) -> dict[str, Any]:
    """Everything in the crop but its camera (the item key) and JPEG (the body)."""
    d = crop.detection
    return {
        "frame_seq": crop.frame_seq,
        "wall_time": crop.wall_time,
        "detection": [d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score, d.label],
        "region": [crop.region.x1, crop.region.y1, crop.region.x2, crop.region.y2],
        "sharpness": crop.sharpness,
        "quality": crop.quality,
        "track_id": crop.track_id,
        "direction": crop.direction,
    }


def _crop(item: store.Item, mono_time: float) -> PlateCrop:
    m, d = item.meta, item.meta["detection"]
    return PlateCrop(
        camera_id=item.key,
        frame_seq=m["frame_seq"],
        wall_time=m["wall_time"],
        mono_time=mono_time,
        detection=Detection(Box(*d[:4]), d[4], d[5]),
        region=Box(*m["region"]),
        jpeg=item.body,
        sharpness=m["sharpness"],
        quality=m["quality"],
        track_id=m.get("track_id", 0),
        direction=m.get("direction", "unknown"),
    )


class Outbox:
    """FIFO of crops on disk. Thread-safe; the reader worker is its only writer in the agent."""

    def __init__(
        self,
        path: str | Path,
        cfg: StorageConfig | None = None,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bounds from ``cfg`` (the outbox_* keys); opens nothing yet."""
        self.store = store.Outbox(path, cfg, clock=wall)
        self._wall = wall
        self._mono = mono

    @classmethod
    def from_config(cls, cfg: StorageConfig, environ: Mapping[str, str] | None = None) -> Outbox:
        return cls(state_dir(cfg, environ) / FILENAME, cfg)

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def dropped(self) -> int:
        """Crops evicted by a bound, or unreadable, since this process started."""
        return self.store.dropped

    def open(self) -> Outbox:
        """Create or open the database now (fail fast at startup); later calls are no-ops."""
        self.store.open()
        return self

    def put(self, crop: PlateCrop) -> int:
        """Park a crop; returns its id. The bounds may evict older crops to make room."""
        return self.store.put(crop.camera_id, crop.jpeg, _meta(crop))

    def peek(self) -> tuple[int, PlateCrop] | None:
        """The oldest crop and its id, without removing it; None when empty."""
        while items := self.store.pending(limit=1):
            item = items[0]
            # monotonic time is per boot: rebuild it from the wall-clock age
            try:
                mono = self._mono() - max(0.0, self._wall() - item.meta["wall_time"])
                return item.id, _crop(item, mono)
            except (ValueError, KeyError, IndexError, TypeError) as err:
                self.store.drop(item.id, f"unreadable crop: {err!r}")
        return None

    def delete(self, item_id: int) -> None:
        self.store.delete(item_id)

    def depth(self) -> int:
        return self.store.depth()

    def oldest_age_s(self) -> float | None:
        return self.store.oldest_age_s()

    def close(self) -> None:
        self.store.close()


__all__ = ["FILENAME", "Outbox", "OutboxError"]
