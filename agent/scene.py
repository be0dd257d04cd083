"""Synthetic gate-camera scenes: drawn vehicles with plates drive in, stop at a line, and leave.

Used by ``plate-agent demo`` (no camera, no fetched data) and by the benchmarks, which also turn on
the distractors (clock overlay, a pedestrian-sized blob, slow brightness change, sensor noise).
Returns ground truth per vehicle: plate text and the frames where it is visible and stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .types import Image

CAR_COLOURS = [(40, 40, 160), (150, 150, 150), (30, 30, 30), (160, 90, 30), (230, 230, 230)]


@dataclass
class VehicleTruth:
    plate: str
    enter_frame: int  # first frame the vehicle is in view
    stop_frame: int  # first frame it stands at the stop line
    leave_frame: int  # first frame it starts to drive off
    exit_frame: int  # first frame it is out of view
    plate_box_at_stop: list[int] = field(default_factory=list)  # xmin, ymin, xmax, ymax
    readable_frame: int = -1  # first frame the whole plate is in view and >= readable_plate_px wide


@dataclass
class SceneSpec:
    plates: Sequence[str] = ("KX52 ODV",)
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    lead_in_s: float = 2.0  # empty road before the first vehicle
    drive_in_s: float = 2.0
    stop_s: float = 2.0
    drive_out_s: float = 1.5
    gap_s: float = 3.0  # empty road between vehicles
    clock_overlay: bool = False
    pedestrian: bool = False
    brightness_drift: float = 0.0  # grey levels per second, sine over the clip
    noise_sigma: float = 0.0
    approach_scale: float = 0.45  # vehicle size when it comes into view (1.0 at the stop line)
    tail_s: float = 0.0  # empty road after the last vehicle's gap
    readable_plate_px: int = 40  # plate width from which ground truth counts it readable
    # pictures of real plates (image files cut to the plate), one per vehicle in order; () = drawn
    plate_images: Sequence[str] = ()
    seed: int = 7


def plate_texts(n: int, seed: int = 11, min_distance: int = 4) -> list[str]:
    """``n`` UK-style plates ("AB12 CDE"), each at least ``min_distance`` characters from the others,
    so no two vehicles can be mistaken for one pass by an OCR-tolerant matcher."""
    rng = np.random.default_rng(seed)
    letters = "ABCDEFGHJKLMNOPRSTUVWXYZ"
    out: list[str] = []
    while len(out) < n:
        chars = [letters[i] for i in rng.integers(0, len(letters), 5)]
        digits = [str(d) for d in rng.integers(0, 10, 2)]
        text = f"{chars[0]}{chars[1]}{digits[0]}{digits[1]} {chars[2]}{chars[3]}{chars[4]}"
        if all(sum(a != b for a, b in zip(text, o, strict=True)) >= min_distance for o in out):
            out.append(text)
    return out


def _background(spec: SceneSpec) -> Image:
    w, h = spec.width, spec.height
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3] = (120, 110, 100)  # building / hedge
    img[h // 3 :] = (95, 95, 95)  # asphalt
    cv2.rectangle(img, (0, h // 3 - 20), (w, h // 3), (70, 80, 70), -1)
    for x in range(0, w, 160):  # fence posts
        cv2.rectangle(img, (x, h // 3 - 90), (x + 12, h // 3), (60, 60, 60), -1)
    stop_y = int(h * 0.86)
    cv2.rectangle(img, (int(w * 0.15), stop_y), (int(w * 0.85), stop_y + 10), (235, 235, 235), -1)
    rng = np.random.default_rng(spec.seed)
    grain = rng.normal(0, 3, img.shape)
    return np.clip(img + grain, 0, 255).astype(np.uint8)


def paste(img: Image, picture: Image, x: int, y: int, width: int) -> list[int]:
    """``picture`` scaled to ``width`` with its top-left corner at (x, y), clipped to the frame."""
    height = max(8, round(width * picture.shape[0] / picture.shape[1]))
    scaled = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + width), min(h, y + height)
    if x1 < x2 and y1 < y2:
        img[y1:y2, x1:x2] = scaled[y1 - y : y2 - y, x1 - x : x2 - x]
    return [x, y, x + width, y + height]


def draw_plate(img: Image, text: str, x: int, y: int, width: int, picture: Image | None = None) -> list[int]:
    """A white plate with a dark border and black characters (or ``picture``); returns its box."""
    if picture is not None:
        return paste(img, picture, x, y, width)
    height = max(8, int(width / 4.5))
    cv2.rectangle(img, (x, y), (x + width, y + height), (245, 245, 245), -1)
    cv2.rectangle(img, (x, y), (x + width, y + height), (20, 20, 20), max(1, width // 90))
    font = cv2.FONT_HERSHEY_DUPLEX
    thickness = max(1, width // 45)
    scale = 1.0
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    scale = min((width * 0.86) / tw, (height * 0.62) / th)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (x + (width - tw) // 2, y + (height + th) // 2)
    cv2.putText(img, text, org, font, scale, (15, 15, 15), thickness, cv2.LINE_AA)
    return [x, y, x + width, y + height]


def draw_car(img: Image, cx: int, bottom: int, scale: float, colour: tuple[int, int, int], plate: str,
             picture: Image | None = None) -> list[int]:
    """A car seen from the front, centred on ``cx`` with its bumper at ``bottom``; returns the plate box."""
    w = int(520 * scale)
    h = int(360 * scale)
    x1, y1 = cx - w // 2, bottom - h
    body = (x1, y1 + int(h * 0.35), x1 + w, bottom - int(h * 0.05))
    cv2.rectangle(img, (x1 + int(w * 0.06), bottom - int(h * 0.12)), (x1 + int(w * 0.2), bottom), (20, 20, 20), -1)
    cv2.rectangle(img, (x1 + int(w * 0.8), bottom - int(h * 0.12)), (x1 + int(w * 0.94), bottom), (20, 20, 20), -1)
    roof = np.array(
        [(x1 + int(w * 0.18), y1 + int(h * 0.38)), (x1 + int(w * 0.28), y1),
         (x1 + int(w * 0.72), y1), (x1 + int(w * 0.82), y1 + int(h * 0.38))], np.int32)
    cv2.fillPoly(img, [roof], colour)
    glass = np.array(
        [(x1 + int(w * 0.23), y1 + int(h * 0.34)), (x1 + int(w * 0.31), y1 + int(h * 0.06)),
         (x1 + int(w * 0.69), y1 + int(h * 0.06)), (x1 + int(w * 0.77), y1 + int(h * 0.34))], np.int32)
    cv2.fillPoly(img, [glass], (60, 50, 40))
    cv2.rectangle(img, body[:2], body[2:], colour, -1)
    for lx in (0.06, 0.76):  # headlights
        cv2.rectangle(img, (x1 + int(w * lx), body[1] + int(h * 0.08)),
                      (x1 + int(w * (lx + 0.18)), body[1] + int(h * 0.2)), (210, 230, 235), -1)
    cv2.rectangle(img, (x1 + int(w * 0.3), body[1] + int(h * 0.06)),
                  (x1 + int(w * 0.7), body[1] + int(h * 0.22)), (35, 35, 35), -1)  # grille
    cv2.rectangle(img, (x1, bottom - int(h * 0.2)), (x1 + w, bottom - int(h * 0.05)),
                  tuple(max(0, c - 40) for c in colour), -1)  # bumper
    pw = int(w * 0.36)
    return draw_plate(img, plate, cx - pw // 2, bottom - int(h * 0.19), pw, picture)


def render(spec: SceneSpec) -> tuple[Iterator[Image], list[VehicleTruth], int]:
    """Frames (lazily), ground truth, and the total frame count."""
    fps = spec.fps
    n_in, n_stop, n_out = (max(1, round(s * fps)) for s in (spec.drive_in_s, spec.stop_s, spec.drive_out_s))
    truths: list[VehicleTruth] = []
    t = round(spec.lead_in_s * fps)
    for plate in spec.plates:
        truths.append(VehicleTruth(plate, t, t + n_in, t + n_in + n_stop, t + n_in + n_stop + n_out))
        t += n_in + n_stop + n_out + round(spec.gap_s * fps)
    total = t + round(spec.tail_s * fps)
    bg = _background(spec)
    pictures: list[Image | None] = [_read_image(p) for p in spec.plate_images]
    pictures += [None] * (len(truths) - len(pictures))
    w, h = spec.width, spec.height
    stop_bottom = int(h * 0.85)
    s0 = spec.approach_scale

    def pose(v: VehicleTruth, i: int) -> tuple[int, int, float] | None:
        if i < v.enter_frame or i >= v.exit_frame:
            return None
        if i < v.stop_frame:  # approaching: grows and moves down the frame
            a = (i - v.enter_frame + 1) / (v.stop_frame - v.enter_frame)
            return w // 2, int(h * 0.45 + a * (stop_bottom - h * 0.45)), s0 + (1.0 - s0) * a
        if i < v.leave_frame:
            return w // 2, stop_bottom, 1.0
        a = (i - v.leave_frame + 1) / (v.exit_frame - v.leave_frame)  # drives off to the right
        return int(w // 2 + a * w * 0.9), stop_bottom, 1.0

    def frames() -> Iterator[Image]:
        rng = np.random.default_rng(spec.seed + 1)
        # a few noise fields drawn once and cycled: per-frame draws cost ~40 ms at 720p
        noise = [rng.normal(0, spec.noise_sigma, (h, w, 3)).astype(np.int16) for _ in range(8)] \
            if spec.noise_sigma else []
        for i in range(total):
            img = bg.copy()
            for k, v in enumerate(truths):
                p = pose(v, i)
                if p is not None:
                    box = draw_car(img, p[0], p[1], p[2], CAR_COLOURS[k % len(CAR_COLOURS)], v.plate, pictures[k])
                    if i == v.stop_frame:
                        v.plate_box_at_stop = box
            if spec.pedestrian:
                px = int((i * 6) % (w + 200)) - 100
                # a dark coat on grey asphalt: different enough to wake the motion gate
                cv2.ellipse(img, (px, int(h * 0.42)), (18, 55), 0, 0, 360, (45, 40, 60), -1)
            if spec.brightness_drift:
                shift = spec.brightness_drift * (total / fps) / 4 * np.sin(2 * np.pi * i / max(1, total))
                step = np.full_like(img, int(abs(shift)))
                img = np.asarray(cv2.add(img, step) if shift > 0 else cv2.subtract(img, step), np.uint8)
            if noise:
                img = np.clip(img + noise[i % len(noise)], 0, 255).astype(np.uint8)
            if spec.clock_overlay:
                secs = int(i / fps)
                cv2.putText(img, f"2026-11-25 08:{secs // 60:02d}:{secs % 60:02d}  CAM 1", (20, 40),
                            cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            yield img

    # plate boxes are known before rendering: the pose fixes them
    for k, v in enumerate(truths):
        probe = bg.copy()
        v.plate_box_at_stop = draw_car(probe, w // 2, stop_bottom, 1.0, CAR_COLOURS[k % 5], v.plate, pictures[k])
        for i in range(v.enter_frame, v.exit_frame):
            p = pose(v, i)
            assert p is not None
            x1, y1, x2, y2 = _plate_box(p[0], p[1], p[2])
            if x2 - x1 >= spec.readable_plate_px and x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
                v.readable_frame = i
                break
    return frames(), truths, total


def _read_image(path: str) -> Image:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read plate image {path}")
    return np.asarray(img, np.uint8)


def _plate_box(cx: int, bottom: int, scale: float) -> tuple[int, int, int, int]:
    """The plate box ``draw_car`` draws for this pose (same arithmetic, without drawing)."""
    w, h = int(520 * scale), int(360 * scale)
    pw = int(w * 0.36)
    x, y = cx - pw // 2, bottom - int(h * 0.19)
    return x, y, x + pw, y + max(8, int(pw / 4.5))


def write_clip(spec: SceneSpec, path: str | Path, fourcc: str = "mp4v") -> list[VehicleTruth]:
    """Render the scene into a video file and its ground truth next to it (``<path>.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, truths, _ = render(spec)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path} with fourcc {fourcc!r}")
    try:
        for img in frames:
            writer.write(img)
    finally:
        writer.release()
    truth_doc = {"spec": asdict(spec), "vehicles": [asdict(v) for v in truths]}
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(truth_doc, indent=1))
    return truths
