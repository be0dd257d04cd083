"""The bundled model (models/) on scenes the test draws: the plate is found, empty frames are not."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from agent.config import DetectorConfig
from agent.detect import BUNDLED_MODEL, TFLiteDetector, bundled_model_path
from agent.types import Box
from tests.fixtures_tflite import require_tflite

from .drawn import car_scene

pytestmark = pytest.mark.usefixtures("runtime")


@pytest.fixture(scope="module")
def detector() -> Iterator[TFLiteDetector]:
    require_tflite()  # module scope: built before the function-scoped ``runtime`` fixture
    det = TFLiteDetector(DetectorConfig())  # model_path "" = the bundled model
    yield det
    det.close()


def test_bundled_model_is_found_and_small() -> None:
    path = bundled_model_path()
    assert path.name == BUNDLED_MODEL and path.is_file()
    assert 1_000_000 < path.stat().st_size < 5_000_000


def test_bundled_model_input(detector: TFLiteDetector) -> None:
    assert (detector.input.width, detector.input.height) == (512, 384)
    assert detector.kind == "yolo"


@pytest.mark.parametrize("plate_w", [120, 180])
def test_drawn_plate_is_found(detector: TFLiteDetector, plate_w: int) -> None:
    img, plate = car_scene(1280, 720, plate_w)
    found = detector.detect(img)
    assert len(found) == 1
    assert found[0].box.iou(plate) > 0.7
    assert found[0].score >= detector.cfg.score_min


@pytest.mark.parametrize("size", [(1280, 720), (640, 480), (1280, 1280)])
@pytest.mark.parametrize("grey", [0, 60, 110, 114, 255])
def test_featureless_frames_yield_nothing(detector: TFLiteDetector, size: tuple[int, int], grey: int) -> None:
    # without the area sanity check the model reads the letterbox bands around some of these as
    # one frame-sized "plate" (score up to 0.74)
    assert detector.detect(np.full((size[1], size[0], 3), grey, np.uint8)) == []


def test_car_without_plate_yields_nothing(detector: TFLiteDetector) -> None:
    car_without_plate, _ = car_scene(1280, 720, 150, plate=False)
    assert detector.detect(car_without_plate) == []


def test_roi_finds_a_plate_the_full_4k_frame_is_too_coarse_for(detector: TFLiteDetector) -> None:
    img, plate = car_scene(3840, 2160, 110)  # 110 px in 3840: 15 px at the 512 px input
    assert detector.detect(img) == []
    motion = Box(plate.x1 - 3 * 110, plate.y1 - 2 * 110, plate.x2 + 3 * 110, plate.y2 + 110)
    found = detector.detect(img, roi=motion)
    assert len(found) == 1 and found[0].box.iou(plate) > 0.7
