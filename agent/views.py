"""Upload gate, answered views: what the reader already saw of a pass, so the same view is not
paid for twice.

- After an unsure answer on a car standing still, the same box with the same look needs a crop
  ``min_quality_gain`` better (motion blur gone).
- After an empty answer the reader found no plate at all in that view. A crop of the same size and
  shape, wherever the box has moved to (the same thing carried along by the vehicle, a badge or a
  grille), shows it again: it waits up to ``whole_wait_s`` for something new. A wider or sharper
  crop (``min_quality_gain``), or one of another shape (more of a plate revealed, or another
  detection taken for this pass), goes at once.
- An empty answer on a box of another shape than the one now seen was about something else (a
  grille taken for a plate as the car came in, then the plate itself in view): it does not use up
  the plate's own ``max_uploads_per_pass`` tries (one such per pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import UploadConfig
from .statics import Look, look_diff
from .types import Box

OTHER_VIEWS_FREE = 1  # empty answers on a box of another shape that do not use up a pass's tries
SAME_VIEW_IOU = 0.6  # an answered crop's box this close, with the same look: the same view
SHAPE_MAX_CHANGE = 1.25  # width/height ratio between two whole sightings of one steady plate (a plate
# scales as it comes closer, keeping its shape; one pixel of jitter on a 12 px high box is 8%)


@dataclass(frozen=True)
class View:
    """One answered crop of a pass that gave no confident read."""

    box: Box
    look: Look
    sharpness: float
    at: float  # monotonic capture time of the crop
    empty: bool  # the reader found no plate (else: unsure text)


def shape(box: Box) -> float:
    return box.width / max(1, box.height)


def same_shape(a: float, b: float) -> bool:
    """Two width/height ratios of one steady plate (or of one thing on a vehicle)."""
    return max(a, b) <= SHAPE_MAX_CHANGE * min(a, b)


def seen_before(views: Sequence[View], box: Box, look: Look, sharpness: float, quality: float,
                best_uploaded: float, at: float, cfg: UploadConfig) -> bool:
    """This crop (``box``, ``look``, taken ``at``) shows a view the reader already answered."""
    gain = cfg.min_quality_gain
    for v in views:
        if v.box.iou(box) >= SAME_VIEW_IOU and look_diff(v.look, look) <= cfg.look_max_diff \
                and quality < best_uploaded * gain:
            return True
        if v.empty and at - v.at < cfg.whole_wait_s and box.width < gain * v.box.width \
                and sharpness < gain * v.sharpness and same_shape(shape(box), shape(v.box)):
            return True
    return False


def spent_elsewhere(views: Sequence[View], box: Box) -> int:
    """Uploads of this pass that were about something else than the whole ``box`` now seen: empty
    answers on a box of another shape (at most ``OTHER_VIEWS_FREE``)."""
    other = sum(1 for v in views if v.empty and not same_shape(shape(v.box), shape(box)))
    return min(OTHER_VIEWS_FREE, other)
