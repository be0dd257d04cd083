"""Synthetic gate-camera scenes: drawn vehicles with plates drive in, stop at a line, and leave.

Used by ``plate-agent demo`` (no camera, no fetched data) and by the benchmarks, which also turn on
the distractors (clock overlay, a pedestrian-sized blob, slow brightness change, sensor noise) and
draw gate scenes: vehicles on their own paths (queues, waits, entering at the frame edge, leaving),
static look-alikes (signs, parked cars and vans), night with IR glare, rain.
Returns ground truth per vehicle: plate text, direction and the frames where it is visible and stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import scene_looks as looks
from ..types import Image

CAR_COLOURS = [(40, 40, 160), (150, 150, 150), (30, 30, 30), (160, 90, 30), (230, 230, 230)]


@dataclass
class VehicleTruth:
    plate: str
    enter_frame: int  # first frame the vehicle is in view
    stop_frame: int  # first frame it stands at the stop line (-1: it never stops)
    leave_frame: int  # first frame it starts to drive off
    exit_frame: int  # first frame it is out of view
    plate_box_at_stop: list[int] = field(default_factory=list)  # xmin, ymin, xmax, ymax
    readable_frame: int = -1  # first frame the whole plate is in view and >= readable_plate_px wide
    direction: str = "approach"  # approach: drives up to the gate | leave: drives away from it


@dataclass(frozen=True)
class Waypoint:
    """Where a vehicle is at ``t_s`` (seconds into the clip); linear in between."""

    t_s: float
    cx: float  # centre, share of the frame width
    bottom: float  # bumper line, share of the frame height (> 1: below the frame)
    scale: float  # 1.0: the size at the stop line


@dataclass(frozen=True)
class Vehicle:
    """A vehicle on its own path (instead of the uniform drive in / stop / drive off schedule)."""

    plate: str
    path: tuple[Waypoint, ...]
    stop: int = -1  # index of the waypoint where it reaches the stop line (-1: never stops)
    leave: int = -1  # index of the waypoint where it drives off the line
    direction: str = "approach"  # approach | leave
    kind: str = "car"  # car | van (boxy, lettering above the windscreen)
    lettering: str = ""


@dataclass(frozen=True)
class Sign:
    """A sign on the wall: dark lines of text on a light board (box in shares of the frame)."""

    lines: tuple[str, ...]
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Parked:
    """A vehicle standing in view all along: a car facing the camera (its plate shows) or a van seen
    from the side with lettering (no plate)."""

    plate: str
    cx: float
    bottom: float
    scale: float
    kind: str = "car"  # car | van
    lettering: str = ""


@dataclass
class StaticTruth:
    kind: str  # sign | car | van
    text: str  # the plate of a parked car, else the sign's or van's text
    box: list[int]  # the object, xmin, ymin, xmax, ymax
    plate_box: list[int] = field(default_factory=list)  # a parked car's plate


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
    vehicles: Sequence[Vehicle] = ()  # own paths; replaces ``plates`` and the uniform schedule
    signs: Sequence[Sign] = ()
    parked: Sequence[Parked] = ()
    stop_line: float = 0.85  # bumper line at the stop, share of the frame height
    night: float = 0.0  # 0 day .. 1 night: dark monochrome (IR) frame, bright plates, headlight bloom
    rain: float = 0.0  # 0 .. 1: streaks, lower contrast, more noise


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
    stop_y = int(h * (spec.stop_line + 0.01))
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


def plate_picture(text: str, width: int, picture: Image | None = None) -> Image:
    """The plate alone, exactly as ``draw_plate`` draws it ``width`` wide (what a reader simulator
    looks for)."""
    if picture is not None:
        height = max(8, round(width * picture.shape[0] / picture.shape[1]))
        return np.asarray(cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    height = max(8, int(width / 4.5))
    canvas = np.zeros((height + 1, width + 1, 3), np.uint8)
    draw_plate(canvas, text, 0, 0, width)
    return canvas


def draw_car(img: Image, cx: int, bottom: int, scale: float, colour: tuple[int, int, int], plate: str,
             picture: Image | None = None, body: bool = True) -> list[int]:
    """A car seen from the front, centred on ``cx`` with its bumper at ``bottom``; returns the plate box.
    ``body=False``: the plate only (on a body drawn by someone else)."""
    w = int(520 * scale)
    h = int(360 * scale)
    x1, y1 = cx - w // 2, bottom - h
    if not body:
        pw = int(w * 0.36)
        return draw_plate(img, plate, cx - pw // 2, bottom - int(h * 0.19), pw, picture)
    shell = (x1, y1 + int(h * 0.35), x1 + w, bottom - int(h * 0.05))
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
    cv2.rectangle(img, shell[:2], shell[2:], colour, -1)
    for lx in (0.06, 0.76):  # headlights
        cv2.rectangle(img, (x1 + int(w * lx), shell[1] + int(h * 0.08)),
                      (x1 + int(w * (lx + 0.18)), shell[1] + int(h * 0.2)), (210, 230, 235), -1)
    cv2.rectangle(img, (x1 + int(w * 0.3), shell[1] + int(h * 0.06)),
                  (x1 + int(w * 0.7), shell[1] + int(h * 0.22)), (35, 35, 35), -1)  # grille
    cv2.rectangle(img, (x1, bottom - int(h * 0.2)), (x1 + w, bottom - int(h * 0.05)),
                  tuple(max(0, c - 40) for c in colour), -1)  # bumper
    pw = int(w * 0.36)
    return draw_plate(img, plate, cx - pw // 2, bottom - int(h * 0.19), pw, picture)


def _uniform(spec: SceneSpec) -> list[Vehicle]:
    """``spec.plates`` on the uniform schedule: in from far away, stop, off to the right, a gap."""
    fps = spec.fps
    n_in, n_stop, n_out = (max(1, round(s * fps)) for s in (spec.drive_in_s, spec.stop_s, spec.drive_out_s))
    out = []
    t = round(spec.lead_in_s * fps)
    s0, line = spec.approach_scale, spec.stop_line
    for plate in spec.plates:
        marks = [t, t + n_in, t + n_in + n_stop, t + n_in + n_stop + n_out]
        path = (Waypoint(marks[0] / fps, 0.5, 0.45, s0), Waypoint(marks[1] / fps, 0.5, line, 1.0),
                Waypoint(marks[2] / fps, 0.5, line, 1.0), Waypoint(marks[3] / fps, 1.4, line, 1.0))
        out.append(Vehicle(plate, path, stop=1, leave=2))
        t += n_in + n_stop + n_out + round(spec.gap_s * fps)
    return out


def _frame(t_s: float, fps: float) -> int:
    return int(round(t_s * fps))


def _truth(v: Vehicle, fps: float) -> VehicleTruth:
    enter, exit_ = _frame(v.path[0].t_s, fps), _frame(v.path[-1].t_s, fps)
    stop = _frame(v.path[v.stop].t_s, fps) if v.stop >= 0 else -1
    leave = _frame(v.path[v.leave].t_s, fps) if v.leave >= 0 else enter
    return VehicleTruth(v.plate, enter, stop, leave, exit_, direction=v.direction)


def pose_at(v: Vehicle, i: int, fps: float, w: int, h: int) -> tuple[int, int, float] | None:
    """Centre x, bumper y (pixels) and scale of ``v`` in frame ``i``; None when out of view."""
    t = i / fps
    p = v.path
    if not p or t < p[0].t_s - 1e-9 or t >= p[-1].t_s - 1e-9:
        return None
    for a, b in zip(p, p[1:], strict=False):
        if a.t_s - 1e-9 <= t < b.t_s - 1e-9:
            f = (t - a.t_s) / max(1e-9, b.t_s - a.t_s)
            return (int(w * (a.cx + f * (b.cx - a.cx))), int(h * (a.bottom + f * (b.bottom - a.bottom))),
                    a.scale + f * (b.scale - a.scale))
    return None


def render(spec: SceneSpec) -> tuple[Iterator[Image], list[VehicleTruth], int]:
    """Frames (lazily), ground truth, and the total frame count."""
    fps = spec.fps
    uniform = not spec.vehicles
    vehicles = _uniform(spec) if uniform else list(spec.vehicles)
    truths = [_truth(v, fps) for v in vehicles]
    last = max((t.exit_frame for t in truths), default=round(spec.lead_in_s * fps))
    total = last + round(((spec.gap_s if uniform and truths else 0.0) + spec.tail_s) * fps)
    bg = static_layer(spec)
    pictures: list[Image | None] = [_read_image(p) for p in spec.plate_images]
    pictures += [None] * (len(truths) - len(pictures))
    w, h = spec.width, spec.height

    def pose(k: int, i: int) -> tuple[int, int, float] | None:
        return pose_at(vehicles[k], i, fps, w, h)

    def frames() -> Iterator[Image]:
        rng = np.random.default_rng(spec.seed + 1)
        sigma = max(spec.noise_sigma, 6.0 * spec.rain)
        # a few noise fields drawn once and cycled: per-frame draws cost ~40 ms at 720p
        noise = [rng.normal(0, sigma, (h, w, 3)).astype(np.int16) for _ in range(8)] if sigma else []
        streaks = looks.rain_layers(w, h, spec.rain, rng) if spec.rain else []
        for i in range(total):
            img = bg.copy()
            lit: list[tuple[int, int, float]] = []  # pose of every vehicle in view (night: its lights)
            in_view = [(p, k) for k in range(len(vehicles)) if (p := pose(k, i)) is not None]
            for p, k in sorted(in_view, key=lambda pk: pk[0][1]):  # farther (higher up) first: nearer hide them
                v = vehicles[k]
                colour = CAR_COLOURS[k % len(CAR_COLOURS)]
                if v.kind == "van":
                    looks.draw_van(img, p[0], p[1], p[2], colour, v.lettering)
                draw_car(img, p[0], p[1], p[2], colour, v.plate, pictures[k], body=v.kind != "van")
                lit.append(p)
            if spec.pedestrian:
                px = int((i * 6) % (w + 200)) - 100
                # a dark coat on grey asphalt: different enough to wake the motion gate
                cv2.ellipse(img, (px, int(h * 0.42)), (18, 55), 0, 0, 360, (45, 40, 60), -1)
            if spec.night:
                img = looks.night(img, spec.night, lit, _static_plates(spec) + [_plate_box(*p) for p in lit])
            if spec.brightness_drift:
                shift = spec.brightness_drift * (total / fps) / 4 * np.sin(2 * np.pi * i / max(1, total))
                step = np.full_like(img, int(abs(shift)))
                img = np.asarray(cv2.add(img, step) if shift > 0 else cv2.subtract(img, step), np.uint8)
            if streaks:
                img = looks.rain(img, streaks[i % len(streaks)], spec.rain)
            if noise:
                img = np.clip(img + noise[i % len(noise)], 0, 255).astype(np.uint8)
            if spec.clock_overlay:
                secs = int(i / fps)
                cv2.putText(img, f"2026-11-25 08:{secs // 60:02d}:{secs % 60:02d}  CAM 1", (20, 40),
                            cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            yield img

    # plate boxes are known before rendering: the pose fixes them
    for k, v in enumerate(truths):
        if v.stop_frame >= 0:
            p = pose(k, v.stop_frame)
            if p is not None:
                v.plate_box_at_stop = list(_plate_box(*p))
        for i in range(v.enter_frame, v.exit_frame):
            p = pose(k, i)
            if p is None:
                continue
            x1, y1, x2, y2 = _plate_box(*p)
            if x2 - x1 >= spec.readable_plate_px and x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
                v.readable_frame = i
                break
    return frames(), truths, total


def plate_boxes(spec: SceneSpec) -> list[dict[int, tuple[int, int, int, int]]]:
    """Per vehicle, its plate box in every frame it is in view (whether or not inside the frame)."""
    vehicles = list(spec.vehicles) or _uniform(spec)
    out = []
    for v in vehicles:
        t = _truth(v, spec.fps)
        boxes = {}
        for i in range(t.enter_frame, t.exit_frame):
            p = pose_at(v, i, spec.fps, spec.width, spec.height)
            if p is not None:
                boxes[i] = _plate_box(*p)
        out.append(boxes)
    return out


def static_layer(spec: SceneSpec) -> Image:
    """The background with the signs and parked vehicles: everything that never moves."""
    img = _background(spec)
    for obj in spec.signs:
        looks.text_board(img, obj.lines, *_sign_box(obj, spec.width, spec.height))
    for k, pk in enumerate(spec.parked):
        cx, bottom = int(pk.cx * spec.width), int(pk.bottom * spec.height)
        colour = CAR_COLOURS[(k + 2) % len(CAR_COLOURS)]
        if pk.kind == "van":
            looks.draw_van_side(img, cx, bottom, pk.scale, colour, pk.lettering)
        else:
            draw_car(img, cx, bottom, pk.scale, colour, pk.plate)
    return img


def static_objects(spec: SceneSpec) -> list[StaticTruth]:
    """Every static object's box (and a parked car's plate box), for scoring uploads of them."""
    w, h = spec.width, spec.height
    out = [StaticTruth("sign", " / ".join(s.lines), list(_sign_box(s, w, h))) for s in spec.signs]
    for pk in spec.parked:
        cx, bottom = int(pk.cx * w), int(pk.bottom * h)
        if pk.kind == "van":
            out.append(StaticTruth("van", pk.lettering, looks.van_side_box(cx, bottom, pk.scale)))
        else:
            cw, ch = int(520 * pk.scale), int(360 * pk.scale)
            out.append(StaticTruth("car", pk.plate, [cx - cw // 2, bottom - ch, cx + cw // 2, bottom],
                                   list(_plate_box(cx, bottom, pk.scale))))
    for o in out:  # the part in view
        o.box = [max(0, o.box[0]), max(0, o.box[1]), min(w, o.box[2]), min(h, o.box[3])]
    return out


def _sign_box(s: Sign, w: int, h: int) -> tuple[int, int, int, int]:
    return int(s.x * w), int(s.y * h), int((s.x + s.width) * w), int((s.y + s.height) * h)


def _static_plates(spec: SceneSpec) -> list[tuple[int, int, int, int]]:
    w, h = spec.width, spec.height
    return [_plate_box(int(p.cx * w), int(p.bottom * h), p.scale) for p in spec.parked if p.kind == "car"]


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
