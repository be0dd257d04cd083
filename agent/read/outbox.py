"""Durable outbox for crops that could not be read yet: a crop codec over the agent's sqlite outbox.

FIFO across restarts, bounded (oldest dropped first and counted). A crop leaves only when the worker
``delete``s it after its read was delivered: each parked crop is handed on at least once, and twice
only when the process dies between the delivery and the delete. A crop keeps its capture time with
the boot it was taken in; one from another boot comes back ``late``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import outbox as store
from .. import timebase
from ..config import StorageConfig
from ..environ import state_dir
from ..late import carried_mono
from ..outbox import OutboxError
from ..types import Box, Detection, PlateCrop

FILENAME = "reader-outbox.sqlite3"


def _meta(crop: PlateCrop, boot_id: str) -> dict[str, Any]:
    """Everything in the crop but its camera (the item key) and JPEG (the body), and its boot."""
    d = crop.detection
    return {
        "frame_seq": crop.frame_seq,
        "wall_time": crop.wall_time,
        "mono_time": crop.mono_time,
        "boot_id": boot_id,
        "late": crop.late,
        "detection": [d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score, d.label],
        "region": [crop.region.x1, crop.region.y1, crop.region.x2, crop.region.y2],
        "sharpness": crop.sharpness,
        "quality": crop.quality,
        "track_id": crop.track_id,
        "direction": crop.direction,
    }


def _crop(item: store.Item, mono_time: float, late: bool) -> PlateCrop:
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
        late=late,
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
        boot_id: Callable[[], str] = timebase.boot_id,
        synchronised: Callable[[], bool] = timebase.system_synchronised,
    ) -> None:
        """Bounds from ``cfg`` (the outbox_* keys); opens nothing yet."""
        self.store = store.Outbox(path, cfg, wall=wall, mono=mono, boot_id=boot_id, synchronised=synchronised)
        self._mono = mono
        self._boot_id = boot_id

    @classmethod
    def from_config(cls, cfg: StorageConfig, environ: Mapping[str, str] | None = None, *,
                    boot_id: Callable[[], str] = timebase.boot_id,
                    synchronised: Callable[[], bool] = timebase.system_synchronised) -> Outbox:
        return cls(state_dir(cfg, environ) / FILENAME, cfg, boot_id=boot_id, synchronised=synchronised)

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def dropped(self) -> int:
        """Crops evicted by a bound, or unreadable, since this process started."""
        return self.store.dropped

    def open(self) -> Outbox:
        """Create or open the database now (in memory when the disk cannot take it); later calls are no-ops."""
        self.store.open()
        return self

    def storage(self) -> dict[str, Any]:
        """``disk`` or ``memory`` and why; where a damaged file was moved (``store.Outbox.storage``)."""
        return self.store.storage()

    def put(self, crop: PlateCrop) -> int:
        """Park a crop; returns its id. The bounds may evict older crops to make room."""
        return self.store.put(crop.camera_id, crop.jpeg, _meta(crop, self._boot_id()))

    def peek(self) -> tuple[int, PlateCrop] | None:
        """The oldest crop and its id, without removing it; None when empty. A crop of another boot,
        or stored without its boot, is ``late`` and dated now (for grouping its reads into a pass)."""
        while items := self.store.pending(limit=1):
            item = items[0]
            try:
                mono = carried_mono(item.meta.get("boot_id"), item.meta.get("mono_time"), self._boot_id())
                late = mono is None or bool(item.meta.get("late", False))
                return item.id, _crop(item, self._mono() if mono is None else mono, late)
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
