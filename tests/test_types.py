"""Box geometry: every stage measures boxes through these methods."""

from __future__ import annotations

import numpy as np
import pytest

from agent.types import Box


def test_size_area_and_centre() -> None:
    b = Box(10, 20, 110, 60)
    assert (b.width, b.height, b.area) == (100, 40, 4000)
    assert b.centre == (60.0, 40.0)
    assert Box(0, 0, 3, 1).centre == (1.5, 0.5)
    assert Box(50, 50, 40, 60).area == 0  # inverted: empty, never negative


def test_iou_intersection_and_intersects() -> None:
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert a.intersection_area(b) == 50
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(a) == 1.0
    touching = Box(10, 0, 20, 10)  # x2 is exclusive: shares an edge, no pixel
    assert not a.intersects(touching) and a.iou(touching) == 0.0
    assert a.intersects(b) and b.intersects(a)
    assert Box(0, 0, 0, 0).iou(Box(0, 0, 0, 0)) == 0.0


def test_union_and_enclosing() -> None:
    a, b, c = Box(0, 0, 10, 10), Box(20, 5, 30, 40), Box(-5, 2, 1, 3)
    assert a.union(b) == Box(0, 0, 30, 40) == b.union(a)
    assert Box.enclosing([a, b, c]) == Box(-5, 0, 30, 40)
    assert Box.enclosing([b]) == b
    with pytest.raises(ValueError):
        Box.enclosing([])


def test_expand_rounds_outward_and_clamp_cuts_to_the_image() -> None:
    b = Box(10, 20, 30, 40)
    assert b.expand(5, 2) == Box(5, 18, 35, 42)
    assert b.expand(0.5, 0.25) == Box(9, 19, 31, 41)  # fractional growth: whole pixels, outward
    assert Box.outward(-0.5, 1.2, 9.1, 9.0) == Box(-1, 1, 10, 9)
    assert Box(-10, -5, 700, 500).clamp(640, 480) == Box(0, 0, 640, 480)
    assert b.clamp(640, 480) == b
    outside = Box(700, 500, 800, 530).clamp(640, 480)
    assert outside.area == 0


def test_offset_and_pixels() -> None:
    assert Box(1, 2, 3, 4).offset(10, -2) == Box(11, 0, 13, 2)
    img = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8)
    cut = Box(2, 1, 5, 3).pixels(img)
    assert cut.shape == (2, 3) and cut[0, 0] == img[1, 2] and cut[-1, -1] == img[2, 4]
    assert Box(700, 500, 800, 530).clamp(8, 6).pixels(img).size == 0
