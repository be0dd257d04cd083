"""Events and paid reads for the store's tests, built the way the decider builds them."""

from __future__ import annotations

import time
import uuid

from agent.types import Box, Candidate, Decision, Detection, PlateCrop, PlateRead


def crop(camera: str = "gate", track: int = 1, jpeg: bytes = b"\xff\xd8jpeg\xff\xd9", seq: int = 1,
         wall: float | None = None) -> PlateCrop:
    wall = time.time() if wall is None else wall
    det = Detection(Box(10, 10, 110, 40), 0.9)
    return PlateCrop(camera, seq, wall, time.monotonic(), det, det.box, jpeg, 100.0, 1.0, track_id=track,
                     direction="approaching")


def decision(plate: str = "AB123CD", *, camera: str = "gate", action: str = "open", kind: str = "new",
             wall: float | None = None, jpeg: bytes = b"\xff\xd8jpeg\xff\xd9", track: int = 1,
             direction: str = "approaching") -> Decision:
    wall = time.time() if wall is None else wall
    c = crop(camera, track, jpeg, wall=wall)
    read = PlateRead(camera, plate, 0.93, 0.9, c.detection.box, wall, c.mono_time,
                     candidates=(Candidate(plate, 0.93), Candidate(plate[:-1] + "0", 0.4)), crop=c)
    return Decision(uuid.uuid4().hex, uuid.uuid4().hex[:16], kind, camera, plate, read, action,
                    f"allow:{plate}" if action == "open" else "", "exact match", False, wall, direction)
