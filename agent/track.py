"""Upload gate: groups one camera's detections into vehicle passes and picks the crops worth a read.

Every image sent to Plate Recognizer is billed, so a pass gets one upload at once (the gate must
open fast) and another only when the answer came back without a confident plate and a clearly
better crop has been seen since; never more than ``max_uploads_per_pass``.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from .config import UploadConfig
from .types import Box, PlateCrop


@dataclass
class Track:
    id: int
    box: Box
    last_seen: float
    uploads: int = 0
    in_flight: int = 0  # uploads not answered yet
    best_uploaded: float = 0.0  # quality of the best crop sent so far
    done: bool = False  # a confident read came back: nothing more to pay for


def _near(a: Box, b: Box) -> bool:
    """Same plate in consecutive frames: overlapping, or centres within ~1.5 plate widths."""
    if a.iou(b) > 0.05:
        return True
    reach = 1.5 * max(a.width, b.width, 1)
    (ax, ay), (bx, by) = a.centre, b.centre
    return (ax - bx) ** 2 + (ay - by) ** 2 <= reach * reach


class PlateTracks:
    """Owned by one camera's pipeline thread; answers are fed back through ``answered``."""

    def __init__(self, cfg: UploadConfig) -> None:
        self.cfg = cfg
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._in_flight: dict[tuple[int, int], Track] = {}  # (track id, frame seq) -> track

    def offer(self, crop: PlateCrop, now: float) -> PlateCrop | None:
        """Record a detection's crop; returns it tagged with its pass when it should be uploaded."""
        track = self._match(crop.detection.box)
        if track is None:
            track = Track(next(self._ids), crop.detection.box, now)
            self.tracks.append(track)
        track.box = crop.detection.box
        track.last_seen = now
        if track.done or track.in_flight or track.uploads >= self.cfg.max_uploads_per_pass:
            return None
        if track.uploads and crop.quality < track.best_uploaded * self.cfg.min_quality_gain:
            return None
        track.uploads += 1
        track.in_flight += 1
        track.best_uploaded = max(track.best_uploaded, crop.quality)
        self._in_flight[(track.id, crop.frame_seq)] = track
        return dataclasses.replace(crop, track_id=track.id)

    def answered(self, crop: PlateCrop, confident: bool) -> None:
        """The read of an uploaded crop came back (or failed for good)."""
        track = self._in_flight.pop((crop.track_id, crop.frame_seq), None)
        if track is None:
            return
        track.in_flight = max(0, track.in_flight - 1)
        track.done = track.done or confident

    def expire(self, now: float) -> None:
        """End passes not seen for ``pass_gap_s``; a plate seen after that is a new pass."""
        gone = [t for t in self.tracks if now - t.last_seen > self.cfg.pass_gap_s]
        if gone:
            self.tracks = [t for t in self.tracks if t not in gone]
            self._in_flight = {k: t for k, t in self._in_flight.items() if t not in gone}

    def _match(self, box: Box) -> Track | None:
        near = [t for t in self.tracks if _near(t.box, box)]
        return max(near, key=lambda t: t.last_seen) if near else None
