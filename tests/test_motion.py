"""Motion gate on generated frames: noise, a moving block, excluded overlays, brightness drift."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from agent.config import MotionConfig, Zone
from agent.motion import MotionGate, merge_boxes, point_allowed, zone_mask
from agent.types import Box

W, H = 640, 360


def scene(rng: np.random.Generator, level: float = 100.0, noise: float = 4.0) -> np.ndarray:
    base = np.full((H, W, 3), level, np.float32)
    cv2.rectangle(base, (50, 200), (600, 300), (level * 0.6,) * 3, -1)  # a kerb
    base += rng.normal(0, noise, base.shape).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def feed(gate: MotionGate, frames, fps: float = 10.0):
    return [gate.update(f, now=i / fps) for i, f in enumerate(frames)]


def test_static_noisy_scene_is_not_motion():
    rng = np.random.default_rng(1)
    gate = MotionGate(MotionConfig())
    results = feed(gate, [scene(rng, noise=6.0) for _ in range(60)])
    assert not any(m.active for m in results)


def test_moving_block_gives_motion_in_the_right_region():
    rng = np.random.default_rng(2)
    gate = MotionGate(MotionConfig(hold_s=0.0))
    frames = [scene(rng) for _ in range(10)]
    for i in range(10):
        f = scene(rng)
        x = 100 + 20 * i
        cv2.rectangle(f, (x, 120), (x + 120, 220), (230, 230, 230), -1)
        frames.append(f)
    results = feed(gate, frames)
    assert not any(m.active for m in results[:10])
    moving = results[12:]
    assert all(m.active for m in moving)
    last = moving[-1]
    x = 100 + 20 * 9
    # the region covers where the block is now, and not the far side of the frame
    assert any(b.x1 <= x + 10 and b.x2 >= x + 110 and b.y1 <= 130 and b.y2 >= 210 for b in last.regions)
    assert all(b.x2 < W - 50 or b.x1 > 0 for b in last.regions)
    assert all(b.area < W * H / 2 for b in last.regions)


def test_timestamp_inside_exclude_zone_is_ignored():
    rng = np.random.default_rng(3)
    zones = [Zone(polygon=[[0.0, 0.0], [0.8, 0.0], [0.8, 0.16], [0.0, 0.16]], kind="exclude")]
    frames = []
    for i in range(40):
        f = scene(rng)
        cv2.putText(f, f"2026-11-25 13:{i:02d}:{(i * 7) % 60:02d}", (10, 40),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.3, (255, 255, 255), 3)
        frames.append(f)
    assert not any(m.active for m in feed(MotionGate(MotionConfig(), zones), frames))
    # the same overlay without the zone is motion: the zone is what silences it
    assert any(m.active for m in feed(MotionGate(MotionConfig()), frames))


def test_slow_global_brightness_change_is_not_motion():
    rng = np.random.default_rng(4)
    frames = [scene(rng, level=60 + i * 0.8) for i in range(150)]  # +120 grey levels in 15 s
    assert not any(m.active for m in feed(MotionGate(MotionConfig()), frames))


def test_hold_off_keeps_gate_open_after_motion_stops():
    rng = np.random.default_rng(5)
    gate = MotionGate(MotionConfig(hold_s=1.0))
    frames = [scene(rng) for _ in range(5)]
    moving = scene(rng)
    cv2.rectangle(moving, (200, 100), (400, 250), (255, 255, 255), -1)
    frames.append(moving)
    frames += [scene(rng) for _ in range(30)]  # gone again: nothing changes any more
    results = feed(gate, frames)
    assert results[5].active
    assert results[5 + 9].active  # 0.9 s later: held
    assert not results[5 + 12].active  # 1.2 s later: released


def test_disabled_gate_passes_every_frame():
    frame = np.zeros((H, W, 3), np.uint8)
    m = MotionGate(MotionConfig(enabled=False)).update(frame, 0.0)
    assert m.active and m.regions == (Box(0, 0, W, H),)


def test_zone_mask_and_point_rules():
    zones = [
        Zone(polygon=[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]], kind="include"),
        Zone(polygon=[[0.8, 0.8], [1.0, 0.8], [1.0, 1.0], [0.8, 1.0]], kind="exclude"),
    ]
    mask = zone_mask(zones, 100, 100)
    assert mask[10, 50] == 0 and mask[70, 50] == 255 and mask[95, 95] == 0
    assert point_allowed(zones, 0.5, 0.7)
    assert not point_allowed(zones, 0.5, 0.2)
    assert not point_allowed(zones, 0.9, 0.9)
    assert point_allowed([], 0.1, 0.1)


@pytest.mark.parametrize(
    "boxes, expected",
    [
        ([Box(0, 0, 10, 10), Box(5, 5, 20, 20), Box(50, 50, 60, 60)], [Box(0, 0, 20, 20), Box(50, 50, 60, 60)]),
        ([Box(0, 0, 10, 10), Box(10, 0, 20, 10)], [Box(0, 0, 10, 10), Box(10, 0, 20, 10)]),
    ],
)
def test_merge_boxes(boxes, expected):
    assert sorted(merge_boxes(boxes), key=lambda b: b.x1) == expected


def test_garbage_first_frame_and_global_change_do_not_leave_a_ghost():
    rng = np.random.default_rng(6)
    gate = MotionGate(MotionConfig(hold_s=0.5))
    grey_first = np.full((H, W, 3), 128, np.uint8)  # a half-decoded frame at connect time
    frames = [grey_first] + [scene(rng) for _ in range(30)]
    results = feed(gate, frames)
    assert not any(m.active for m in results[1:])
    # lights switched on: everything changes at once, then the scene is still again
    bright = [scene(rng, level=200.0) for _ in range(30)]
    results = [gate.update(f, now=10.0 + i / 10) for i, f in enumerate(bright)]
    assert results[0].active  # the switch itself counts
    assert not any(m.active for m in results[10:])  # no ghost once the hold-off is over


def test_a_parked_object_is_learnt_as_fast_per_second_at_one_frame_a_second():
    """While idle only keyframes arrive (1 a second): the background must still take in an object
    left standing in about the same time as at the 5 frames a second it was tuned at."""

    def absorbed_after_s(fps: float) -> float:
        rng = np.random.default_rng(7)
        gate = MotionGate(MotionConfig(hold_s=0.0))
        t = 0.0
        for _ in range(5):  # warm-up: the empty scene is the background
            gate.update(scene(rng), now=t)
            t += 1 / fps
        start = t
        while t - start < 120:
            frame = scene(rng)
            cv2.rectangle(frame, (250, 60), (390, 160), (210, 210, 210), -1)  # a bin put down and left
            moved = gate.update(frame, now=t)
            if t == start:
                assert moved.active  # it is motion when it appears
            elif not moved.active:
                return t - start
            t += 1 / fps
        return math.inf

    at_5, at_1 = absorbed_after_s(5.0), absorbed_after_s(1.0)
    assert 3.0 < at_5 < 60.0
    assert abs(at_1 - at_5) <= 1.5, (at_1, at_5)  # per frame it would take five times as long


def test_the_gate_says_while_it_is_building_its_background_again_after_the_frame_size_changed():
    """The camera's source decodes only keyframes once the gate sees nothing: not while it cannot judge."""
    gate = MotionGate(MotionConfig())
    small, large = np.full((120, 160, 3), 90, np.uint8), np.full((240, 320, 3), 90, np.uint8)
    warming = [(gate.update(small, t * 0.1), gate.warming)[1] for t in range(10)]
    assert warming[0] and not warming[-1]
    gate.update(large, 1.0)  # the stream came back at another resolution
    assert gate.warming
