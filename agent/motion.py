"""Stage 2, motion gate: frame -> Motion (active?, changed regions in frame pixels).

Works on a downscaled, blurred grey copy against a running-average background. Per-camera zones
(normalised include/exclude polygons) mask what may count, and the median difference is removed
first so a slow global brightness change (clouds, dusk, auto-exposure) never counts as motion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .config import MotionConfig, Zone
from .types import Box, Image, Motion

logger = logging.getLogger(__name__)

Mask = npt.NDArray[np.uint8]

WARMUP_FRAMES = 3  # frames taken as the background outright after a (re)start
RELEARN_FRACTION = 0.7  # changed share of the zoned frame above which the background restarts
# ``learning_rate`` is per frame at up to this interval (5 frames a second, the idle rate it was
# tuned at); frames further apart (keyframes only while idle: 1 a second) count as several, so the
# background learns as fast per second as before. A longer gap (a reconnect, a GOP over 1 s) counts
# as LEARN_GAP_MAX_S: one frame must not replace the background (a 5 s cap left ghosts after a
# global change, tests/test_motion.py).
LEARN_FRAME_S = 0.2
LEARN_GAP_MAX_S = 1.0


def zone_mask(zones: Sequence[Zone], width: int, height: int) -> Mask:
    """255 where motion and plates may count: inside an include zone (or anywhere when there is
    none) and outside every exclude zone."""
    includes = [z for z in zones if z.kind == "include"]
    mask = np.zeros((height, width), np.uint8) if includes else np.full((height, width), 255, np.uint8)
    scale = np.array([width - 1, height - 1], np.float64)
    for kind, value in (("include", 255), ("exclude", 0)):
        for z in zones:
            if z.kind == kind:
                pts = np.round(np.asarray(z.polygon, np.float64) * scale).astype(np.int32)
                cv2.fillPoly(mask, [pts], value)
    return mask


def point_allowed(zones: Sequence[Zone], x: float, y: float) -> bool:
    """Whether the normalised point (x, y) lies where the zones allow (for detections)."""
    inside = [
        cv2.pointPolygonTest(np.asarray(z.polygon, np.float32), (x, y), False) >= 0 for z in zones
    ]
    included = not any(z.kind == "include" for z in zones) or any(
        ok for z, ok in zip(zones, inside) if z.kind == "include"
    )
    return included and not any(ok for z, ok in zip(zones, inside) if z.kind == "exclude")


class MotionGate:
    """Decides per frame whether anything moved where it matters, and where."""

    def __init__(
        self,
        cfg: MotionConfig,
        zones: Sequence[Zone] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.zones = list(zones)
        self.clock = clock
        self._bg: npt.NDArray[np.float32] | None = None
        self._warmup = 0
        self.warming = True  # the last frame only built the background (first frames, new frame size)
        self._sample: npt.NDArray[np.bool_] = np.zeros((0, 0), bool)
        self._mask: Mask | None = None
        self._mask_area = 0
        self._frame_shape: tuple[int, ...] = ()
        self._small_size = (0, 0)
        self._last_motion: float | None = None
        self._last_regions: tuple[Box, ...] = ()
        self._last_update: float | None = None
        kernel_px = 3
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_px, kernel_px))

    def _prepare(self, image: Image) -> npt.NDArray[np.uint8]:
        if image.shape != self._frame_shape:
            h, w = image.shape[:2]
            sw = min(self.cfg.downscale_width_px, w)
            sh = max(1, round(h * sw / w))
            self._small_size = (sw, sh)
            self._frame_shape = image.shape
            self._mask = zone_mask(self.zones, sw, sh)
            self._mask_area = max(1, int(np.count_nonzero(self._mask)))
            # every 4th pixel of each 4th row inside the zones: enough for the median shift
            self._sample = np.zeros_like(self._mask, dtype=bool)
            self._sample[::4, ::4] = self._mask[::4, ::4] > 0
            self._bg = None
            self._warmup = 0
        # nearest-neighbour sampling is ~15x cheaper than INTER_AREA on a 720p frame; the blur
        # below does the smoothing that matters against noise
        small = cv2.resize(image, self._small_size, interpolation=cv2.INTER_NEAREST)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        if self.cfg.blur_px > 1:
            k = self.cfg.blur_px | 1
            grey = cv2.GaussianBlur(grey, (k, k), 0)
        return grey  # type: ignore[return-value]  # cv2 stubs: MatLike, not our uint8 array

    def update(self, image: Image, now: float | None = None) -> Motion:
        """Feed one frame; returns whether motion is active (incl. hold-off) and its regions."""
        if not self.cfg.enabled:
            h, w = image.shape[:2]
            return Motion(True, (Box(0, 0, w, h),), 1.0)
        now = self.clock() if now is None else now
        grey = self._prepare(image)
        assert self._mask is not None
        self.warming = self._bg is None or self._warmup > 0
        if self.warming or self._bg is None:  # (the second for the type checker: the same test)
            # the first frames after (re)connecting may be partly decoded: start from a few later
            self._warmup = WARMUP_FRAMES if self._bg is None else self._warmup - 1
            self._bg = grey.astype(np.float32)
            self._last_update = now
            return self._held(now, 0.0)
        diff = grey.astype(np.float32) - self._bg
        # remove the frame-wide shift (brightness drift) measured inside the zones
        offset = float(np.median(diff[self._sample])) if self._sample.any() else 0.0
        changed = (np.abs(diff - offset) > self.cfg.threshold).astype(np.uint8) * 255
        changed = cv2.bitwise_and(changed, self._mask)
        changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._kernel)
        fraction = float(np.count_nonzero(changed)) / self._mask_area
        if fraction >= RELEARN_FRACTION:
            # lights switched, camera moved or a stream glitch: no car changes this much at once;
            # start the background again instead of chasing a ghost for many seconds
            self._bg = grey.astype(np.float32)
            self._last_update = now
            self._last_motion = now
            self._last_regions = ()
            return self._held(now, fraction)
        # learn a quarter as fast where things change: a car stopped at the line stays "motion"
        # for several seconds, while anything left standing is absorbed within ~10 s
        moving = cv2.dilate(changed, self._kernel, iterations=2)
        frames = self._frames_since_last(now)
        cv2.accumulateWeighted(grey, self._bg, _rate(self.cfg.learning_rate, frames), mask=cv2.bitwise_not(moving))
        cv2.accumulateWeighted(grey, self._bg, _rate(self.cfg.learning_rate / 4, frames), mask=moving)
        if fraction >= self.cfg.min_area_fraction and fraction > 0:
            self._last_motion = now
            self._last_regions = self._regions(changed, image.shape[1], image.shape[0])  # type: ignore[arg-type]  # cv2 MatLike
        return self._held(now, fraction)

    def _frames_since_last(self, now: float) -> float:
        """How many frames of LEARN_FRAME_S the time since the last update counts for (at least 1)."""
        last, self._last_update = self._last_update, now
        if last is None:
            return 1.0
        return max(1.0, min(now - last, LEARN_GAP_MAX_S) / LEARN_FRAME_S)

    def _held(self, now: float, fraction: float) -> Motion:
        if self._last_motion is not None and now - self._last_motion <= self.cfg.hold_s:
            return Motion(True, self._last_regions, fraction)
        return Motion(False, (), fraction)

    def _regions(self, changed: Mask, width: int, height: int) -> tuple[Box, ...]:
        """Connected changed areas, scaled to frame pixels, padded and merged."""
        merged = cv2.dilate(changed, self._kernel, iterations=3)
        n, _, stats, _ = cv2.connectedComponentsWithStats(merged, connectivity=8)
        sx = width / self._small_size[0]
        sy = height / self._small_size[1]
        min_px = max(1.0, self.cfg.min_area_fraction * self._mask_area / 4)
        boxes: list[Box] = []
        for x, y, w, h, area in stats[1:n]:
            if area < min_px:
                continue
            pad_x = w * self.cfg.region_pad_fraction
            pad_y = h * self.cfg.region_pad_fraction
            padded = Box.outward((x - pad_x) * sx, (y - pad_y) * sy, (x + w + pad_x) * sx, (y + h + pad_y) * sy)
            boxes.append(padded.clamp(width, height))
        return tuple(merge_boxes(boxes))


def _rate(per_frame: float, frames: float) -> float:
    """The update weight that ``frames`` updates at ``per_frame`` would have had in all."""
    return 1.0 - (1.0 - per_frame) ** frames


def merge_boxes(boxes: Sequence[Box]) -> list[Box]:
    """Union overlapping boxes until none overlap."""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a.intersects(b):
                    out[i] = a.union(b)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out
