"""The reader simulator judges pixels: whole readable plates are read, anything else is not."""

from __future__ import annotations

import functools

import numpy as np

from agent.tools import scene_looks
from agent.tools.scene import Parked, SceneSpec, Sign, draw_car, plate_picture, static_layer, static_objects
from tests.bench.gate import StaticLocator, agent_crop
from tests.bench.judge import KnownPlate, PlateJudge

PLATES = ("KX52 ODV", "AB12 CDE", "WD64 JUF")
GREY = (95, 95, 95)


def judge(min_width_px: int = 40) -> PlateJudge:
    return PlateJudge([KnownPlate(t, functools.partial(plate_picture, t)) for t in PLATES], min_width_px=min_width_px)


def car_frame(plate: str, scale: float = 1.0, bottom: int = 600) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    img = np.full((720, 1280, 3), GREY, np.uint8)
    x1, y1, x2, y2 = draw_car(img, 640, bottom, scale, (40, 40, 160), plate)
    return img, (x1, y1, x2, y2)


def test_a_whole_plate_is_read_as_its_own_text_not_a_similar_plate():
    img, box = car_frame("AB12 CDE")
    verdicts = judge().read(agent_crop(img, box))
    assert [v.text for v in verdicts] == ["AB12 CDE"]


def test_a_plate_cut_off_by_the_frame_edge_is_not_read():
    img, box = car_frame("AB12 CDE", bottom=760)  # the plate's lower part is below the frame
    assert box[3] > 720 > box[1]
    assert judge().read(agent_crop(img, (box[0], box[1], box[2], 720))) == []
    whole, wbox = car_frame("AB12 CDE", bottom=700)
    assert [v.text for v in judge().read(agent_crop(whole, wbox))] == ["AB12 CDE"]


def test_a_crop_of_half_a_plate_is_not_read():
    img, (x1, y1, x2, y2) = car_frame("KX52 ODV")
    crop = agent_crop(img, (x1, y1, x2, y2))
    assert judge().read(crop[:, : crop.shape[1] // 2]) == []


def test_a_sign_with_dark_text_on_a_white_board_is_not_read():
    img = np.full((200, 400, 3), (120, 110, 100), np.uint8)
    scene_looks.text_board(img, ["PRIVATE", "NO PARKING"], 50, 40, 350, 160)
    assert judge().read(img) == []
    scene_looks.text_board(img, ["UNIT 14B"], 50, 40, 250, 84)  # plate-shaped
    assert judge().read(img) == []


def test_a_plate_narrower_than_the_readable_width_is_not_read():
    img, box = car_frame("WD64 JUF", scale=0.3)  # ~56 px wide
    crop = agent_crop(img, box)
    assert [v.text for v in judge(40).read(crop)] == ["WD64 JUF"]
    assert judge(80).read(crop) == []


def test_a_whole_frame_with_two_cars_reads_both():
    img, _ = car_frame("KX52 ODV")
    draw_car(img, 200, 420, 0.5, (150, 150, 150), "WD64 JUF")
    assert sorted(v.text for v in judge().read(img)) == ["KX52 ODV", "WD64 JUF"]


def test_rain_and_noise_are_read_through_but_a_plate_drowned_in_glare_is_not():
    img, box = car_frame("KX52 ODV")
    rng = np.random.default_rng(1)
    wet = scene_looks.rain(img, scene_looks.rain_layers(1280, 720, 1.0, rng, n=1)[0], 1.0)
    wet = np.clip(wet + rng.normal(0, 6, wet.shape), 0, 255).astype(np.uint8)
    assert [v.text for v in judge().read(agent_crop(wet, box))] == ["KX52 ODV"]
    x1, y1, x2, y2 = box
    for washed, read in ((0.3, True), (0.06, False)):  # glare: the plate goes white, the text with it
        glare = img.astype(np.float32)
        glare[y1:y2 + 1, x1:x2 + 1] = 255 - (255 - glare[y1:y2 + 1, x1:x2 + 1]) * washed
        glare = np.clip(glare + rng.normal(0, 3, glare.shape), 0, 255).astype(np.uint8)
        assert [v.text for v in judge().read(agent_crop(glare, box))] == (["KX52 ODV"] if read else [])


def test_the_static_locator_finds_a_sign_crop_and_not_a_car_crop():
    spec = SceneSpec(plates=(), width=1280, height=720,
                     signs=(Sign(("UNIT 14B",), 0.3, 0.16, 0.1, 0.032),),
                     parked=(Parked("WD64 JUF", 0.13, 0.7, 0.6),))
    objects = static_objects(spec)
    locator = StaticLocator(spec, objects)
    view = static_layer(spec)
    sx1, sy1, sx2, sy2 = objects[0].box
    assert locator.locate(agent_crop(view, (sx1 + 5, sy1 + 2, sx2 - 5, sy2 - 2))) == 0
    assert locator.locate(agent_crop(view, tuple(objects[1].plate_box))) == 1  # type: ignore[arg-type]
    img, box = car_frame("KX52 ODV")
    assert locator.locate(agent_crop(img, box)) is None
