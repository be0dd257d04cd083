"""Extras for the synthetic scenes (agent/tools/scene.py): vans with lettering, wall signs, and the looks
of night (IR) and rain. Drawing only; the scene decides what goes where and when.
"""

from __future__ import annotations

from collections.abc import Sequence
import cv2
import numpy as np

from ..types import Image

INK = (25, 25, 25)
PAPER = (238, 238, 238)


def text_board(img: Image, lines: Sequence[str], x1: int, y1: int, x2: int, y2: int, border: bool = True) -> None:
    """Dark lines of text centred on a light board: what a plate detector can mistake for a plate."""
    cv2.rectangle(img, (x1, y1), (x2, y2), PAPER, -1)
    if border:
        cv2.rectangle(img, (x1, y1), (x2, y2), INK, max(1, (x2 - x1) // 80))
    n = max(1, len(lines))
    font = cv2.FONT_HERSHEY_DUPLEX
    band = (y2 - y1) / n
    for i, line in enumerate(lines):
        thickness = max(1, int(band) // 12)
        (tw, th), _ = cv2.getTextSize(line, font, 1.0, thickness)
        scale = min((x2 - x1) * 0.86 / max(1, tw), band * 0.6 / max(1, th))
        (tw, th), _ = cv2.getTextSize(line, font, scale, thickness)
        org = (x1 + (x2 - x1 - tw) // 2, int(y1 + band * i + (band + th) / 2))
        cv2.putText(img, line, org, font, scale, INK, thickness, cv2.LINE_AA)


def draw_van(img: Image, cx: int, bottom: int, scale: float, colour: tuple[int, int, int], lettering: str) -> None:
    """A van seen from the front (boxy, tall), lettering on a panel above the windscreen; the plate
    is drawn by the caller where a car's would be."""
    w, h = int(540 * scale), int(470 * scale)
    x1, y1 = cx - w // 2, bottom - h
    cv2.rectangle(img, (x1, y1), (x1 + w, bottom - int(h * 0.04)), colour, -1)
    cv2.rectangle(img, (x1 + int(w * 0.08), y1 + int(h * 0.25)), (x1 + int(w * 0.92), y1 + int(h * 0.52)),
                  (60, 50, 40), -1)  # windscreen
    if lettering:
        text_board(img, [lettering], x1 + int(w * 0.12), y1 + int(h * 0.05), x1 + int(w * 0.88),
                   y1 + int(h * 0.19), border=False)
    for lx in (0.05, 0.77):
        cv2.rectangle(img, (x1 + int(w * lx), y1 + int(h * 0.6)), (x1 + int(w * (lx + 0.18)), y1 + int(h * 0.7)),
                      (210, 230, 235), -1)
    cv2.rectangle(img, (x1, bottom - int(h * 0.16)), (x1 + w, bottom - int(h * 0.04)),
                  tuple(max(0, c - 40) for c in colour), -1)  # bumper
    for wx in (0.06, 0.8):
        cv2.rectangle(img, (x1 + int(w * wx), bottom - int(h * 0.08)), (x1 + int(w * (wx + 0.14)), bottom),
                      (20, 20, 20), -1)


def van_side_box(cx: int, bottom: int, scale: float) -> list[int]:
    w, h = int(900 * scale), int(420 * scale)
    return [cx - w // 2, bottom - h, cx + w // 2, bottom]


def draw_van_side(img: Image, cx: int, bottom: int, scale: float, colour: tuple[int, int, int],
                  lettering: str) -> None:
    """A parked van seen from the side: a long box with lettering along its panel, wheels, no plate."""
    x1, y1, x2, y2 = van_side_box(cx, bottom, scale)
    w, h = x2 - x1, y2 - y1
    cv2.rectangle(img, (x1, y1), (x2, y2 - int(h * 0.12)), colour, -1)
    cv2.rectangle(img, (x2 - int(w * 0.22), y1 + int(h * 0.08)), (x2 - int(w * 0.04), y1 + int(h * 0.4)),
                  (60, 50, 40), -1)  # cab window
    if lettering:
        lines = lettering.split("/")
        text_board(img, [ln.strip() for ln in lines], x1 + int(w * 0.05), y1 + int(h * 0.15), x2 - int(w * 0.3),
                   y1 + int(h * 0.6), border=False)
    for wx in (0.18, 0.8):
        cv2.circle(img, (x1 + int(w * wx), y2 - int(h * 0.12)), int(h * 0.13), (20, 20, 20), -1)


def night(img: Image, strength: float, vehicles: Sequence[tuple[int, int, float]],
          plates: Sequence[tuple[int, int, int, int]]) -> Image:
    """Night through an IR camera: monochrome and dark, retro-reflective ``plates`` (boxes) bright,
    and the headlights of every vehicle in view (pose: centre, bumper, scale) blooming over its front."""
    h, w = img.shape[:2]
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    out = grey * (1.0 - 0.78 * strength)
    boxes = list(plates)
    for x1, y1, x2, y2 in boxes:  # IR light comes back from the plate
        xa, ya, xb, yb = max(0, x1), max(0, y1), min(w, x2 + 1), min(h, y2 + 1)
        if xa < xb and ya < yb:
            out[ya:yb, xa:xb] = np.minimum(255.0, grey[ya:yb, xa:xb] * (1.0 + 0.1 * strength))
    # bloom on a quarter-size layer (a large blur at full size costs ~30 ms)
    q = 4
    glow = np.zeros((h // q + 1, w // q + 1), np.float32)
    for cx, bottom, s in vehicles:
        cw, ch = 520 * s, 360 * s
        for lx in (0.15, 0.85):  # the headlights
            cv2.circle(glow, (int((cx - cw / 2 + lx * cw) / q), int((bottom - ch * 0.5) / q)),
                       max(1, int(cw * 0.07 / q)), 255.0, -1)
    for x1, y1, x2, y2 in boxes:
        cv2.rectangle(glow, (x1 // q, y1 // q), (x2 // q, y2 // q), 90.0, -1)
    sigma = max(2.0, 20.0 / q * 2)
    glow = cv2.GaussianBlur(glow, (0, 0), sigma) * (1.6 * strength)
    out += cv2.resize(glow, (w, h), interpolation=cv2.INTER_LINEAR)[:h, :w]
    grey8 = np.clip(out, 0, 255).astype(np.uint8)
    return np.asarray(cv2.cvtColor(grey8, cv2.COLOR_GRAY2BGR), np.uint8)


def rain_layers(w: int, h: int, strength: float, rng: np.random.Generator, n: int = 8) -> list[Image]:
    """A few layers of slanted streaks (0..255), cycled over the frames."""
    out = []
    count = int(900 * strength)
    for _ in range(n):
        layer = np.zeros((h, w), np.uint8)
        xs, ys = rng.integers(0, w, count), rng.integers(0, h, count)
        lengths = rng.integers(12, 40, count)
        for x, y, ln in zip(xs, ys, lengths, strict=True):
            cv2.line(layer, (int(x), int(y)), (int(x + ln * 0.25), int(y + ln)), 255, 1, cv2.LINE_AA)
        out.append(layer)
    return out


def rain(img: Image, streaks: Image, strength: float) -> Image:
    """Lower contrast (wet air, a film on the lens), then light streaks over everything."""
    a = 1.0 - 0.25 * strength
    flat = cv2.convertScaleAbs(img, alpha=a, beta=128 * (1 - a))
    alpha = (streaks.astype(np.float32) / 255.0 * (0.45 * strength))[..., None]
    out = flat.astype(np.float32) * (1 - alpha) + 215.0 * alpha
    return np.clip(out, 0, 255).astype(np.uint8)
