"""Frozen values passed between pipeline stages: frames, boxes, detections, crops, reads."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

APPROACHING, LEAVING, UNKNOWN = "approaching", "leaving", "unknown"  # directions of travel


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixels of the image it belongs to; x2/y2 are exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    @classmethod
    def outward(cls, x1: float, y1: float, x2: float, y2: float) -> Box:
        """The smallest whole-pixel box holding these (fractional) edges."""
        return cls(math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))

    @classmethod
    def enclosing(cls, boxes: Iterable[Box]) -> Box:
        """The smallest box holding all of ``boxes``; ValueError when there are none."""
        out: Box | None = None
        for b in boxes:
            out = b if out is None else out.union(b)
        if out is None:
            raise ValueError("no boxes to enclose")
        return out

    def intersection_area(self, other: Box) -> int:
        ix = max(0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0, min(self.y2, other.y2) - max(self.y1, other.y1))
        return ix * iy

    def intersects(self, other: Box) -> bool:
        """The two share some area (touching edges do not count)."""
        return self.intersection_area(other) > 0

    def iou(self, other: Box) -> float:
        inter = self.intersection_area(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box(min(self.x1, other.x1), min(self.y1, other.y1), max(self.x2, other.x2), max(self.y2, other.y2))

    def offset(self, dx: int, dy: int) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def expand(self, dx: float, dy: float) -> Box:
        """Grown by ``dx`` left and right and ``dy`` top and bottom, outward to whole pixels."""
        return Box.outward(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)

    def clamp(self, width: int, height: int) -> Box:
        """Cut to an image of ``width`` x ``height``; a box outside it comes back empty (area 0)."""
        return Box(max(0, self.x1), max(0, self.y1), min(width, self.x2), min(height, self.y2))

    def pixels(self, image: Image) -> Image:
        """The part of ``image`` inside the box (a view, no copy); clamp first."""
        return image[self.y1 : self.y2, self.x1 : self.x2]

    def as_dict(self) -> dict[str, int]:
        return {"xmin": self.x1, "ymin": self.y1, "xmax": self.x2, "ymax": self.y2}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded camera frame (BGR) with its capture times."""

    camera_id: str
    image: Image
    seq: int
    wall_time: float  # time.time() at capture, for timestamps sent and published
    mono_time: float  # time.monotonic() at capture, for ages and latencies


@dataclass(frozen=True, slots=True)
class Motion:
    """Result of the motion gate for one frame: changed regions in frame pixels."""

    active: bool
    regions: tuple[Box, ...] = ()
    changed_fraction: float = 0.0


@dataclass(frozen=True, slots=True)
class Detection:
    """A plate found by the on-device detector, in frame pixels."""

    box: Box
    score: float
    label: str = "plate"


@dataclass(frozen=True, slots=True)
class PlateCrop:
    """The image sent to the reader for one detection, plus where it came from."""

    camera_id: str
    frame_seq: int
    wall_time: float
    mono_time: float
    detection: Detection
    region: Box  # the part of the frame the JPEG holds (plate or vehicle area)
    jpeg: bytes  # empty until the upload gate sends the crop (Cropper.encode)
    sharpness: float
    quality: float  # ranking score: higher is a better frame of the same pass
    track_id: int = 0  # the camera's vehicle pass this crop belongs to (0 = unknown)
    direction: str = "unknown"  # the pass's direction when uploaded: approaching | leaving | unknown
    late: bool = False  # of unknown age (parked in another boot): published, never actuates
    pixels: Image | None = field(default=None, compare=False, repr=False)  # the region, until encoded


@dataclass(frozen=True, slots=True)
class Candidate:
    plate: str
    score: float


@dataclass(frozen=True, slots=True)
class Vehicle:
    type: str = ""
    score: float = 0.0
    box: Box | None = None
    make: str = ""
    model: str = ""
    color: str = ""
    orientation: str = ""


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One plate as read by Plate Recognizer (or only detected, when no reader is configured)."""

    camera_id: str
    plate: str  # normalised upper-case text; "" when only detected
    score: float  # read confidence 0..1 (0 when not read)
    dscore: float  # detection confidence 0..1
    box: Box  # plate box in frame pixels
    wall_time: float  # capture time of the frame it was read from
    mono_time: float
    region: str = ""
    region_score: float = 0.0
    candidates: tuple[Candidate, ...] = ()
    vehicle: Vehicle | None = None
    crop: PlateCrop | None = None
    late: bool = False  # read arrived after rules.max_decision_age_s: publish, never actuate
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the agent concluded about one vehicle pass; every sink gets each one."""

    event_id: str  # unique per emitted event
    pass_id: str  # one per vehicle pass; an "update" repeats the pass's id
    kind: str  # "new" | "update" | "unread" (a vehicle pass that ended with no plate read)
    camera_id: str
    plate: str  # the pass's voted text ("" when only detected)
    read: PlateRead  # the best read of the pass so far
    action: str  # "open" | "deny" | "none"
    rule: str  # which rule fired, e.g. "allow:AB123CD" or "" when none
    reason: str  # why, in words: "exact match", "score 0.52 < min_score 0.70", ...
    late: bool  # decided after max_decision_age_s: published, never actuates
    decided_at: float  # wall time
    direction: str = "unknown"  # approaching | leaving | unknown


@dataclass(frozen=True, slots=True)
class PassEnd:
    """A vehicle pass that ended without any plate text: the operator still gets one event."""

    camera_id: str
    track_id: int
    direction: str
    uploads: int
    why: str  # in words: "no plate read in 2 upload(s)", "not read: leaving (pay_for = approaching)"
    crop: PlateCrop  # its last crop: box, times and image for the event
