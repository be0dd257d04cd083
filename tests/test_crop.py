"""Crops: padding and clamping, vehicle context, minimum width, sharpness/quality, JPEG size cap."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.config import CropConfig
from agent.crop import Cropper, crop_region, encode_jpeg, quality_score, sharpness
from agent.types import Box, Detection, Frame


def plate_frame(w: int = 640, h: int = 480, box: Box = Box(280, 300, 380, 330)) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.rectangle(img, (box.x1, box.y1), (box.x2 - 1, box.y2 - 1), (255, 255, 255), -1)
    cv2.putText(img, "AB12CDE", (box.x1 + 4, box.y2 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2)
    return img


def frame(img: np.ndarray) -> Frame:
    return Frame("gate", img, 7, 1_700_000_000.0, 123.0)


def test_plate_region_is_padded_around_the_box() -> None:
    r = crop_region(Box(200, 200, 300, 230), 640, 480, "plate", 0.25)
    assert r == Box(175, 187, 325, 243)  # 25 px (a quarter width) sideways, 12.5 px up and down
    assert r.x1 < 200 and r.x2 > 300 and r.y1 < 200 and r.y2 > 230


def test_region_is_clamped_to_the_frame() -> None:
    r = crop_region(Box(0, 460, 100, 480), 640, 480, "plate", 0.5)
    assert (r.x1, r.y2) == (0, 480) and r.x2 <= 640 and r.y1 >= 0


def test_vehicle_region_is_several_plate_widths_wide() -> None:
    plate = Box(1000, 800, 1100, 830)
    r = crop_region(plate, 2000, 2000, "vehicle", 0.25)
    assert r.width == 500 and r.x1 == 800  # 5 plate widths, centred on the plate
    assert r.y1 == 600 and r.y2 == 880  # 2 widths above, half a width below
    plate_r = crop_region(plate, 2000, 2000, "plate", 0.25)
    assert r.area > 10 * plate_r.area


def test_sharpness_drops_with_blur() -> None:
    img = plate_frame()[300:330, 280:380]
    assert sharpness(img) > 5 * sharpness(cv2.GaussianBlur(img, (0, 0), 2.0))
    assert sharpness(np.full((20, 20, 3), 128, np.uint8)) == 0.0
    assert sharpness(np.zeros((0, 0, 3), np.uint8)) == 0.0


def test_quality_prefers_larger_sharper_more_confident() -> None:
    assert quality_score(160, 1000, 0.9) > quality_score(80, 1000, 0.9)
    assert quality_score(120, 1000, 0.9) > quality_score(120, 50, 0.9)
    assert quality_score(120, 1000, 0.9) > quality_score(120, 1000, 0.4)
    assert quality_score(400, 1e9, 1.0) <= 1.0
    assert quality_score(400, 1000, 0.9) == quality_score(160, 1000, 0.9)  # size saturates


def test_cropper_builds_a_decodable_jpeg_of_the_region() -> None:
    img = plate_frame()
    det = Detection(Box(280, 300, 380, 330), 0.8)
    cropper = Cropper(CropConfig(mode="plate", pad_fraction=0.25))
    measured = cropper.crop(frame(img), det)
    assert measured is not None and measured.jpeg == b""  # nothing encoded until the gate sends it
    crop = cropper.encode(measured)
    assert crop.pixels is None and cropper.encode(crop) is crop  # encoded once
    assert (crop.camera_id, crop.frame_seq, crop.wall_time, crop.mono_time) == ("gate", 7, 1_700_000_000.0, 123.0)
    assert crop.detection is det
    decoded = cv2.imdecode(np.frombuffer(crop.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (crop.region.height, crop.region.width)
    assert crop.region == crop_region(det.box, 640, 480, "plate", 0.25)
    assert crop.sharpness > 100 and 0 < crop.quality <= 1


def test_cropper_vehicle_mode_sends_more_context() -> None:
    img = plate_frame(1280, 960, Box(600, 700, 700, 730))
    det = Detection(Box(600, 700, 700, 730), 0.8)
    plate = Cropper(CropConfig(mode="plate")).crop(frame(img), det)
    vehicle = Cropper(CropConfig(mode="vehicle")).crop(frame(img), det)
    assert plate is not None and vehicle is not None
    assert vehicle.region.area > 5 * plate.region.area
    assert vehicle.quality == pytest.approx(plate.quality)  # ranked by the plate, not the region


def test_cropper_skips_boxes_outside_the_frame() -> None:
    assert Cropper(CropConfig()).crop(frame(plate_frame()), Detection(Box(700, 500, 800, 530), 0.8)) is None


def test_blurred_frame_ranks_lower() -> None:
    img = plate_frame()
    det = Detection(Box(280, 300, 380, 330), 0.8)
    sharp = Cropper(CropConfig()).crop(frame(img), det)
    blurred = Cropper(CropConfig()).crop(frame(cv2.GaussianBlur(img, (0, 0), 2.5)), det)
    assert sharp is not None and blurred is not None
    assert sharp.quality > 1.25 * blurred.quality  # enough to win the pass's re-upload gate


def test_jpeg_is_kept_under_the_byte_limit() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    big = encode_jpeg(noise, 95, 3_000_000)
    assert len(big) > 200_000  # noise does not compress: the limit below really bites
    small = encode_jpeg(noise, 95, 100_000)
    assert len(small) <= 100_000
    assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR) is not None
