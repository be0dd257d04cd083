"""probe: one JSON line per image, crops and reads per plate, annotated images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent import config
from agent.crop import Cropper
from agent.detect import TFLiteDetector
from agent.tools.probe import probe_image, run_probe
from agent.types import PlateCrop, PlateRead

from .detect.conftest import MODELS, tiny_cfg

pytestmark = pytest.mark.usefixtures("runtime")


def square_image(path: Path) -> Path:
    img = np.zeros((128, 128, 3), np.uint8)
    img[64:80, 32:48] = 255
    cv2.imwrite(str(path), img)
    return path


def tiny_config() -> config.Config:
    return config.parse({"detector": {"model_path": str(MODELS / "tiny_yolo_cf.tflite"),
                                      "min_plate_width_px": 1, "score_min": 0.5}})


def test_run_probe_prints_json_and_writes_annotated_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = square_image(tmp_path / "gate.png")
    status = run_probe([str(img), str(tmp_path / "missing.png")], tiny_config(), annotate=str(tmp_path / "out"))
    assert status == 1  # the missing image
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["plates"][0]["box"] == {"xmin": 32, "ymin": 64, "xmax": 48, "ymax": 80}
    assert lines[0]["plates"][0]["crop"]["bytes"] > 0
    assert "error" in lines[1]
    drawn = cv2.imread(str(tmp_path / "out" / "gate.jpg"))
    assert drawn is not None
    assert drawn[72, 32, 1] > 150 and drawn[72, 32, 2] < 100  # the green box edge on the square's side


def test_probe_image_includes_reads(tmp_path: Path) -> None:
    seen: list[PlateCrop] = []

    def fake_read(crop: PlateCrop) -> list[PlateRead]:
        seen.append(crop)
        return [PlateRead("probe", "AB12CDE", 0.93, crop.detection.score, crop.detection.box,
                          crop.wall_time, crop.mono_time)]

    doc, image = probe_image(square_image(tmp_path / "a.png"), TFLiteDetector(tiny_cfg()), Cropper(
        config.CropConfig()), fake_read)
    assert image is not None and len(seen) == 1
    assert doc["plates"][0]["reads"][0]["plate"] == "AB12CDE"


def test_run_probe_fails_cleanly_without_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config.parse({"detector": {"model_path": str(tmp_path / "none.tflite")}})
    assert run_probe([str(square_image(tmp_path / "a.png"))], cfg) == 2
    assert "none.tflite" in capsys.readouterr().err
