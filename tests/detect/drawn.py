"""A drawn gate-camera scene with one car and its plate, for tests of the real model."""

from __future__ import annotations

import cv2
import numpy as np

from agent.types import Box


def car_scene(
    width: int, height: int, plate_w: int, text: str = "KX52 ODV", plate: bool = True
) -> tuple[np.ndarray, Box]:
    """BGR frame with a car front centred low in view; returns it and the plate's box."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 3] = (120, 110, 100)  # wall
    img[height // 3 :] = (95, 95, 95)  # asphalt
    cx, bottom = width // 2, int(height * 0.85)
    cw, ch = int(plate_w * 4.5), int(plate_w * 2.6)
    cv2.rectangle(img, (cx - cw // 2, bottom - ch), (cx + cw // 2, bottom), (40, 40, 160), -1)
    cv2.rectangle(
        img, (cx - cw // 2 + cw // 8, bottom - ch + ch // 10), (cx + cw // 2 - cw // 8, bottom - ch // 2),
        (70, 60, 50), -1,
    )  # windscreen
    for side in (-1, 1):  # head lamps
        cv2.circle(img, (cx + side * (cw // 2 - cw // 10), bottom - ch // 3), max(3, plate_w // 6), (200, 220, 230), -1)
    ph = max(6, plate_w * 2 // 9)
    x1, y1 = cx - plate_w // 2, bottom - ch // 4 - ph // 2
    box = Box(x1, y1, x1 + plate_w, y1 + ph)
    if plate:
        stroke = max(1, ph // 8)
        cv2.rectangle(img, (box.x1, box.y1), (box.x2 - 1, box.y2 - 1), (245, 245, 245), -1)
        cv2.rectangle(img, (box.x1, box.y1), (box.x2 - 1, box.y2 - 1), (20, 20, 20), max(1, ph // 12))
        scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, int(ph * 0.6), stroke)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, stroke)
        org = (box.x1 + (plate_w - tw) // 2, box.y2 - (ph - th) // 2)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (10, 10, 10), stroke, cv2.LINE_AA)
    return img, box
