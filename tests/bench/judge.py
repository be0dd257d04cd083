"""A plate reader simulator that judges the uploaded image, never the clock: it knows the plates a
scene drew (text and the exact picture, at any width) and reads one only where the WHOLE plate is in
the image, readable. A cut-off, too small or too degraded plate, a sign or an empty crop reads as no
plate, which a real reader bills just the same.

How: multi-scale normalised template matching (``cv2.TM_CCOEFF_NORMED``) of every known plate's
picture over the image. The full template must fit and correlate above ``threshold`` (a plate cut
by the image edge cannot), at a width of at least ``min_width_px``, with a contrast (grey-level
standard deviation) of at least ``min_contrast`` (normalised correlation alone would read a plate
washed out by glare); and it must beat every other known plate at the same place by ``margin``
(plates share their white field and border, so a wrong plate still correlates ~0.7-0.8 with the
right one: the text decides). Noise, rain and darkness lower the correlation: a plate too degraded
to match is not read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from agent.types import Image

SEARCH_TEMPLATE_PX = 32  # candidates are searched for with templates scaled down to about this width,
SEARCH_TEMPLATE_WIDE_PX = 16  # or this in images wider than WIDE_PX (whole frames: cost ~ image x template)
WIDE_PX = 640
COARSE_STEP = 1.12  # between template widths when searching for candidates
FINE_STEP = 1.02  # between template widths when checking a candidate (1% size error: ~0.01 correlation)
CANDIDATE_MIN = 0.5  # a place where a plate-shaped template correlates this well is checked
MAX_CANDIDATES = 3  # per known plate


@dataclass(frozen=True)
class KnownPlate:
    """A plate the scene drew: its text and its picture at a given width (as drawn in the frame)."""

    text: str
    picture: Callable[[int], Image]


@dataclass(frozen=True)
class Verdict:
    """A plate found: its text, its box in the image (x1, y1, x2, y2) and its correlation."""

    text: str
    box: tuple[int, int, int, int]
    score: float


@dataclass(frozen=True)
class _Hit:
    score: float
    box: tuple[int, int, int, int]
    plate: int


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _grey(image: Image) -> Image:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image, np.uint8)


def _peaks(res: np.ndarray, n: int, floor: float, w: int, h: int) -> list[tuple[float, int, int]]:
    """Up to ``n`` local maxima of a match map above ``floor``, a template size apart."""
    res = res.copy()
    out = []
    for _ in range(n):
        _, score, _, (x, y) = cv2.minMaxLoc(res)
        if score < floor:
            break
        out.append((float(score), x, y))
        res[max(0, y - h // 2) : y + h // 2 + 1, max(0, x - w // 2) : x + w // 2 + 1] = -1.0
    return out


class PlateJudge:
    """Reads the known plates in an image. Stateless after construction but for a template cache."""

    def __init__(self, plates: Sequence[KnownPlate], *, min_width_px: int = 40, threshold: float = 0.8,
                 margin: float = 0.06, max_width_px: int = 400, min_contrast: float = 10.0) -> None:
        self.plates = list(plates)
        self.min_contrast = min_contrast
        self.min_width_px = min_width_px
        self.threshold = threshold
        self.margin = margin
        self.max_width_px = max_width_px
        self._template = functools.lru_cache(maxsize=8192)(self._grey_template)
        self._scaled_cached = functools.lru_cache(maxsize=8192)(self._scaled)

    def warm(self) -> PlateJudge:
        """Draw every template once now, so the first reads are as fast as the later ones."""
        for k in range(len(self.plates)):
            for width in range(self.min_width_px, self.max_width_px + 1):
                self._template(k, width)
        return self

    def _grey_template(self, k: int, width: int) -> Image:
        return _grey(self.plates[k].picture(width))

    def read(self, image: Image) -> list[Verdict]:
        """Every known plate found whole and readable in ``image``, best first ([] = no plate)."""
        grey = _grey(image)
        hits: list[_Hit] = []
        levels: dict[float, Image] = {1.0: grey}
        for k in range(len(self.plates)):
            checked = [h for cand in self._candidates(grey, k, levels) if (h := self._check(grey, k, cand)) is not None]
            if checked:  # each known plate is one physical plate: its best place
                hits.append(max(checked, key=lambda h: h.score))
        out: list[Verdict] = []
        for hit in sorted(hits, key=lambda h: -h.score):
            if hit.score < self.threshold or any(_overlap(hit.box, v.box) for v in out):
                continue
            x1, y1, x2, y2 = hit.box
            if float(np.std(grey[y1:y2, x1:x2])) < self.min_contrast:
                continue  # washed out (glare, fog): the shape is there, the characters are not legible
            rivals = [h.score for h in hits if h.plate != hit.plate and _overlap(h.box, hit.box)]
            if rivals and hit.score - max(rivals) < self.margin:
                continue
            out.append(Verdict(self.plates[hit.plate].text, hit.box, round(hit.score, 3)))
        return out

    def _widths(self, img_w: int, img_h: int, k: int) -> list[int]:
        widths: list[int] = []
        w = float(self.min_width_px)
        while w <= min(img_w, self.max_width_px):
            t = self._template(k, round(w))
            if t.shape[0] > img_h or t.shape[1] > img_w:
                break
            widths.append(round(w))
            w *= COARSE_STEP
        return widths

    def _scaled(self, k: int, width: int, f: float) -> Image:
        t = self._template(k, width)
        if f == 1.0:
            return t
        size = (max(1, round(t.shape[1] / f)), max(1, round(t.shape[0] / f)))
        return np.asarray(cv2.resize(t, size, interpolation=cv2.INTER_AREA), np.uint8)

    def _candidates(self, grey: Image, k: int, levels: dict[float, Image]) -> list[tuple[float, int, int, int]]:
        """Places and widths (score, width, x, y at full size) where plate ``k`` may be. Each width is
        searched on the image scaled down until the template is about SEARCH_TEMPLATE_PX wide."""
        h, w = grey.shape[:2]
        target = SEARCH_TEMPLATE_PX if w <= WIDE_PX else SEARCH_TEMPLATE_WIDE_PX
        found: list[tuple[float, int, int, int]] = []
        for tw in self._widths(w, h, k):
            f = 2.0 ** (np.floor(2 * np.log2(max(1.0, tw / target))) / 2)
            if f not in levels:
                levels[f] = np.asarray(cv2.resize(grey, (round(w / f), round(h / f)), interpolation=cv2.INTER_AREA),
                                       np.uint8)
            small, ts = levels[f], self._scaled_cached(k, tw, f)
            if ts.shape[0] > small.shape[0] or ts.shape[1] > small.shape[1]:
                continue
            res = cv2.matchTemplate(small, ts, cv2.TM_CCOEFF_NORMED)
            found += [(sc, tw, round(x * f), round(y * f))
                      for sc, x, y in _peaks(res, 2, CANDIDATE_MIN, ts.shape[1], ts.shape[0])]
        kept: list[tuple[float, int, int, int]] = []
        for c in sorted(found, reverse=True):  # one candidate per place, the best width
            box = (c[2], c[3], c[2] + c[1], c[3] + c[1] // 4)
            if not any(_overlap(box, (o[2], o[3], o[2] + o[1], o[3] + o[1] // 4)) for o in kept):
                kept.append(c)
            if len(kept) == MAX_CANDIDATES:
                break
        return kept

    def _check(self, grey: Image, k: int, cand: tuple[float, int, int, int]) -> _Hit | None:
        """Plate ``k`` matched at full size near a candidate, over widths around the candidate's:
        every other fine step first, then the two next to the best."""
        best = self._match_near(grey, k, cand, [round(cand[1] * FINE_STEP**s) for s in range(-6, 7, 2)])
        if best is None:
            return None
        tw = best.box[2] - best.box[0]
        near = self._match_near(grey, k, cand, [round(tw * FINE_STEP), round(tw / FINE_STEP)])
        return near if near is not None and near.score > best.score else best

    def _match_near(self, grey: Image, k: int, cand: tuple[float, int, int, int], widths: list[int]) -> _Hit | None:
        _, tw0, x0, y0 = cand
        h, w = grey.shape[:2]
        best: _Hit | None = None
        for tw in widths:
            if tw < self.min_width_px or tw > self.max_width_px:
                continue
            t = self._template(k, tw)
            pad = max(4, tw0 // 8)
            x1, y1 = max(0, x0 - pad), max(0, y0 - pad)
            x2, y2 = min(w, x0 + max(t.shape[1], tw0) + pad), min(h, y0 + t.shape[0] + pad)
            window = grey[y1:y2, x1:x2]
            if window.shape[0] < t.shape[0] or window.shape[1] < t.shape[1]:
                continue
            res = cv2.matchTemplate(window, t, cv2.TM_CCOEFF_NORMED)
            _, score, _, loc = cv2.minMaxLoc(res)
            if best is None or score > best.score:
                x, y = x1 + loc[0], y1 + loc[1]
                best = _Hit(float(score), (x, y, x + t.shape[1], y + t.shape[0]), k)
        return best
