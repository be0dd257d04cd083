"""Decoders, NMS and letterbox geometry: pure numpy, no model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.decode import Letterbox, decode_ssd, decode_yolo, dequantize, nms, yolo_layout


def yolo_out(rows: list[tuple[float, float, float, float, float]], n: int = 100) -> np.ndarray:
    """[1, 5, n] channels-first output with ``rows`` (cx, cy, w, h, score) first, zeros after."""
    out = np.zeros((1, 5, n), np.float32)
    for i, r in enumerate(rows):
        out[0, :, i] = r
    return out


def test_layouts_are_told_apart_by_anchor_count() -> None:
    assert yolo_layout((1, 5, 8400)) == "channels_first"
    assert yolo_layout((1, 8400, 5)) == "channels_last"
    assert yolo_layout((1, 84, 8400)) == "channels_first"
    assert yolo_layout((1, 10)) is None
    assert yolo_layout((2, 5, 8400)) is None


def test_decode_yolo_channels_first_converts_centre_size_to_corners() -> None:
    raw = decode_yolo(yolo_out([(100, 50, 40, 20, 0.9), (10, 10, 4, 4, 0.1)]), 320, 320, 0.25)
    assert len(raw) == 1
    np.testing.assert_allclose(raw.boxes[0], [80, 40, 120, 60])
    assert raw.scores[0] == pytest.approx(0.9)
    assert raw.classes[0] == 0


def test_decode_yolo_channels_last_matches_channels_first() -> None:
    out = yolo_out([(100, 50, 40, 20, 0.9), (200, 150, 60, 30, 0.6)])
    a = decode_yolo(out, 320, 320, 0.25)
    b = decode_yolo(np.ascontiguousarray(out.transpose(0, 2, 1)), 320, 320, 0.25)
    np.testing.assert_allclose(a.boxes, b.boxes)
    np.testing.assert_allclose(a.scores, b.scores)


def test_decode_yolo_scales_normalised_boxes_to_input_pixels() -> None:
    raw = decode_yolo(yolo_out([(0.5, 0.25, 0.1, 0.05, 0.8)]), 640, 320, 0.25)
    np.testing.assert_allclose(raw.boxes[0], [288, 72, 352, 88], atol=1e-3)


def test_decode_yolo_multiclass_takes_best_class() -> None:
    out = np.zeros((1, 6, 50), np.float32)
    out[0, :, 0] = [10, 10, 4, 4, 0.2, 0.7]
    raw = decode_yolo(out, 64, 64, 0.5)
    assert raw.classes.tolist() == [1]
    assert raw.scores.tolist() == pytest.approx([0.7])


def test_decode_yolo_below_threshold_is_empty() -> None:
    assert len(decode_yolo(yolo_out([(100, 50, 40, 20, 0.2)]), 320, 320, 0.25)) == 0


def test_decode_yolo_rejects_other_shapes() -> None:
    with pytest.raises(ValueError):
        decode_yolo(np.zeros((1, 10), np.float32), 64, 64, 0.5)


def test_decode_ssd_swaps_yx_and_scales_and_honours_count() -> None:
    boxes = np.array([[[0.1, 0.2, 0.3, 0.6], [0.5, 0.5, 0.6, 0.6], [0.0, 0.0, 1.0, 1.0]]], np.float32)
    classes = np.array([[0, 0, 0]], np.float32)
    scores = np.array([[0.9, 0.8, 0.95]], np.float32)
    raw = decode_ssd(boxes, classes, scores, np.array([2.0], np.float32), 200, 100, 0.5)
    assert len(raw) == 2  # the third is past num_detections
    np.testing.assert_allclose(raw.boxes[0], [40, 10, 120, 30], atol=1e-4)


def test_dequantize_uses_scale_and_zero_point() -> None:
    q = np.array([0, 128, 255], np.uint8)
    np.testing.assert_allclose(dequantize(q, 0.5, 128), [-64, 0, 63.5])
    f = np.array([1.5], np.float32)
    assert dequantize(f, 0.0, 0).tolist() == [1.5]


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.8, 0.9, 0.5, 0.3], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def test_letterbox_fit_centres_and_scales() -> None:
    g = Letterbox.fit(1280, 720, 512, 512)
    assert g.scale == pytest.approx(0.4)
    assert g.resized == (512, 288)
    assert (g.pad_x, g.pad_y) == (0, 112)


@given(
    src_w=st.integers(16, 4000),
    src_h=st.integers(16, 4000),
    dst=st.sampled_from([(64, 64), (320, 320), (512, 512), (640, 384)]),
    ox=st.integers(0, 500),
    oy=st.integers(0, 500),
    fx=st.floats(0, 0.9),
    fy=st.floats(0, 0.9),
)
def test_letterbox_round_trip(src_w: int, src_h: int, dst: tuple[int, int], ox: int, oy: int,
                              fx: float, fy: float) -> None:
    g = Letterbox.fit(src_w, src_h, dst[0], dst[1], (ox, oy))
    x1, y1 = ox + fx * src_w, oy + fy * src_h
    box = np.array([[x1, y1, x1 + 0.1 * src_w, y1 + 0.1 * src_h]], np.float32)
    back = g.to_frame(g.to_model(box))
    np.testing.assert_allclose(back, box, rtol=1e-4, atol=1e-2)
    model = g.to_model(box)[0]
    assert -1e-3 <= model[0] and model[2] <= dst[0] + 1e-3  # inside the model input
    assert -1e-3 <= model[1] and model[3] <= dst[1] + 1e-3


def test_letterbox_to_frame_clips_to_the_source_region() -> None:
    g = Letterbox.fit(100, 50, 64, 64, origin=(200, 300))
    out = g.to_frame(np.array([[-20, -20, 200, 200]], np.float32))
    np.testing.assert_allclose(out[0], [200, 300, 300, 350])
