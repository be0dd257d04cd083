"""TFLite backend on the kilobyte fixture models: preprocessing, decoding, mapping, ROI, errors.
(Which runtime is loaded: test_runtime.py.)

The fixture "detectors" score each 8x8 cell of their 64x64 input by its brightness (see
tests/fixtures/models/make_tiny_models.py), so a white square on black is found where it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.detect import DETECTORS, TFLiteDetector, create_detector
from agent.errors import DetectorError
from agent.types import Box

from .conftest import MODELS, tiny_cfg

pytestmark = pytest.mark.usefixtures("runtime")


def frame_with_square(w: int, h: int, box: Box, value: int = 255) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[box.y1 : box.y2, box.x1 : box.x2] = value
    return img


@pytest.mark.parametrize("model", ["tiny_yolo_cf.tflite", "tiny_yolo_cl.tflite", "tiny_ssd.tflite"])
def test_square_frame_maps_back_to_frame_pixels(model: str) -> None:
    det = TFLiteDetector(tiny_cfg(model))
    # 128 px frame -> scale 0.5: a 16 px square at (32, 64) fills model cell (2, 4) exactly
    found = det.detect(frame_with_square(128, 128, Box(32, 64, 48, 80)))
    assert [d.box for d in found] == [Box(32, 64, 48, 80)]
    assert found[0].score == pytest.approx(1.0, abs=0.01)
    assert found[0].label == "plate"


@pytest.mark.parametrize("model", ["tiny_yolo_cf.tflite", "tiny_yolo_cl.tflite", "tiny_ssd.tflite"])
def test_wide_frame_is_letterboxed_and_mapped_back(model: str) -> None:
    det = TFLiteDetector(tiny_cfg(model))
    # 256x128 -> scale 0.25, 16 px of padding above: (64, 32)-(96, 64) lands on cell (2, 3)
    found = det.detect(frame_with_square(256, 128, Box(64, 32, 96, 64)))
    assert [d.box for d in found] == [Box(64, 32, 96, 64)]


def test_empty_frame_has_no_detections() -> None:
    assert TFLiteDetector(tiny_cfg()).detect(np.zeros((120, 160, 3), np.uint8)) == []


def test_score_threshold_applies() -> None:
    img = frame_with_square(128, 128, Box(32, 64, 48, 80), value=100)  # score ~0.39
    assert TFLiteDetector(tiny_cfg(score_min=0.5)).detect(img) == []
    found = TFLiteDetector(tiny_cfg(score_min=0.3)).detect(img)
    assert len(found) == 1 and found[0].score == pytest.approx(100 / 255, abs=0.02)


def test_min_plate_width_drops_small_boxes() -> None:
    img = frame_with_square(128, 128, Box(32, 64, 48, 80))
    assert TFLiteDetector(tiny_cfg(min_plate_width_px=17)).detect(img) == []
    assert len(TFLiteDetector(tiny_cfg(min_plate_width_px=16)).detect(img)) == 1


def test_grey_frames_are_accepted() -> None:
    img = frame_with_square(128, 128, Box(32, 64, 48, 80))[:, :, 0].copy()
    assert [d.box for d in TFLiteDetector(tiny_cfg()).detect(img)] == [Box(32, 64, 48, 80)]


def test_roi_finds_what_the_full_frame_is_too_coarse_for() -> None:
    det = TFLiteDetector(tiny_cfg())
    plate = Box(608, 408, 624, 424)  # 16 px in a 1024 px frame: 1 px at the whole-frame scale
    img = frame_with_square(1024, 1024, plate)
    assert det.detect(img) == []
    # a 32 px motion region -> grown to 128 px (ROI_SCALE_MAX 0.5 of the 64 px input): the plate
    # becomes 8 px, exactly one cell
    found = det.detect(img, roi=Box(592, 392, 624, 424))
    assert [d.box for d in found] == [plate]
    # the minimum plate width holds on a region as on the whole frame
    assert TFLiteDetector(tiny_cfg(min_plate_width_px=17)).detect(img, roi=Box(592, 392, 624, 424)) == []
    assert TFLiteDetector(tiny_cfg(roi=False)).detect(img, roi=Box(592, 392, 624, 424)) == []


def test_region_for_rules() -> None:
    det = TFLiteDetector(tiny_cfg(roi_max_fraction=0.25))
    assert det.region_for(1000, 1000, None) is None
    assert det.region_for(1000, 1000, Box(0, 0, 600, 600)) is None  # 36% of the frame: too big
    region = det.region_for(1000, 1000, Box(100, 100, 300, 200))
    # padded by 10% of its size on every side (240 x 120), then grown to 128 px high: scale <= 0.5
    assert region == Box(80, 86, 320, 214)
    edge = det.region_for(1000, 1000, Box(-50, 980, 10, 1100))  # clipped to the frame, then grown
    assert edge == Box(0, 872, 128, 1000)
    assert det.region_for(100, 100, Box(10, 10, 20, 20)) is None  # grown to the whole frame: no gain
    assert TFLiteDetector(tiny_cfg(roi=False)).region_for(1000, 1000, Box(100, 100, 300, 200)) is None


def test_separate_plates_are_all_kept_best_first() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    img[0:8, 0:8] = 255
    img[40:48, 40:48] = 200
    found = TFLiteDetector(tiny_cfg()).detect(img)
    assert [d.box for d in found] == [Box(0, 0, 8, 8), Box(40, 40, 48, 48)]
    assert found[0].score > found[1].score


def test_input_spec_is_read_from_the_model() -> None:
    det = TFLiteDetector(tiny_cfg())
    assert (det.input.width, det.input.height, det.input.nchw) == (64, 64, False)
    assert np.dtype(det.input.dtype) == np.float32
    assert det.kind == "yolo"
    assert TFLiteDetector(tiny_cfg("tiny_ssd.tflite")).kind == "ssd"


def test_num_threads_reaches_the_interpreter(runtime: Any) -> None:
    seen: dict[str, Any] = {}

    def spy(**kw: Any) -> Any:
        seen.update(kw)
        return runtime(**kw)

    TFLiteDetector(tiny_cfg(num_threads=3), interpreter_class=spy)
    assert seen["num_threads"] == 3


def test_registry_and_factory() -> None:
    assert DETECTORS["tflite"] is TFLiteDetector
    assert isinstance(create_detector(tiny_cfg()), TFLiteDetector)
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        create_detector(tiny_cfg(type="nope"))


def test_close_is_idempotent_and_detect_after_close_fails() -> None:
    det = TFLiteDetector(tiny_cfg())
    det.close()
    det.close()
    with pytest.raises(DetectorError, match="closed"):
        det.detect(np.zeros((64, 64, 3), np.uint8))


# ---------------------------------------------------------------- startup errors


def test_missing_model_file(tmp_path: Any) -> None:
    missing = tmp_path / "nope.tflite"
    with pytest.raises(DetectorError, match="model file not found.*nope.tflite"):
        TFLiteDetector(tiny_cfg(model_path=str(missing)))


def test_corrupt_model_file(tmp_path: Any) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(DetectorError, match="cannot load"):
        TFLiteDetector(tiny_cfg(model_path=str(bad)))


def test_truncated_model_file(tmp_path: Any) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((MODELS / "tiny_yolo_cf.tflite").read_bytes()[:200])
    with pytest.raises(DetectorError):
        TFLiteDetector(tiny_cfg(model_path=str(cut)))


def test_unexpected_output_shape() -> None:
    with pytest.raises(DetectorError, match=r"output shapes \[\[1, 10\]\]"):
        TFLiteDetector(tiny_cfg("tiny_bad_shape.tflite"))


def test_quantised_input_is_quantised_with_the_models_scale() -> None:
    import dataclasses

    det = TFLiteDetector(tiny_cfg())
    det.input = dataclasses.replace(det.input, dtype=np.int8, scale=1 / 255, zero_point=-128)
    rgb = np.array([[[0, 128, 255]]], np.uint8)
    q = det._to_input_dtype(rgb)
    assert q.dtype == np.int8 and q.tolist() == [[[-128, 0, 127]]]
    det.input = dataclasses.replace(det.input, dtype=np.uint8, scale=0.0, zero_point=0)
    assert det._to_input_dtype(rgb).tolist() == [[[0, 128, 255]]]  # unquantised uint8: raw pixels
