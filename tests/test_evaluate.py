"""eval-detector: matching, recall at both IoUs, false boxes, per-region rows, the CLI entry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent import config
from agent.tools.evaluate import eval_detector, format_table, match, read_annotations, run_eval
from agent.types import Box, Detection

from .detect.conftest import MODELS

HEADER = "file,plate_text,xmin,ymin,xmax,ymax,region,width,height,source_file\n"


def write_set(root: Path, rows: list[tuple[str, Box, str]], size: int = 128) -> None:
    """Images with a white square at each annotated box, and their annotations.csv."""
    (root / "images").mkdir(parents=True)
    lines = [HEADER]
    for name, box, region in rows:
        img = np.zeros((size, size, 3), np.uint8)
        img[box.y1 : box.y2, box.x1 : box.x2] = 255
        cv2.imwrite(str(root / "images" / name), img)
        lines.append(f"images/{name},X,{box.x1},{box.y1},{box.x2},{box.y2},{region},{size},{size},src/{name}\n")
    (root / "annotations.csv").write_text("".join(lines))


def test_match_is_one_to_one() -> None:
    truth = [Box(0, 0, 10, 10)]
    dets = [Detection(Box(0, 0, 10, 10), 0.9), Detection(Box(1, 1, 10, 10), 0.8)]
    assert match(dets, truth, 0.5) == 1
    assert match([Detection(Box(0, 0, 10, 20), 0.9)], truth, 0.5) == 1  # IoU 0.5
    assert match([Detection(Box(0, 0, 10, 25), 0.9)], truth, 0.5) == 0  # IoU 0.4
    assert match([Detection(Box(0, 0, 10, 25), 0.9)], truth, 0.3) == 1


def test_eval_counts_recall_false_boxes_and_regions(tmp_path: Path) -> None:
    write_set(tmp_path, [("a.png", Box(10, 10, 50, 30), "us"), ("b.png", Box(60, 60, 100, 80), "us"),
                         ("c.png", Box(20, 20, 60, 40), "eu")])
    answers = {
        (10, 10): [Detection(Box(10, 10, 50, 30), 0.9)],  # exact hit
        (60, 60): [Detection(Box(60, 60, 100, 112), 0.9), Detection(Box(0, 100, 20, 120), 0.5)],  # IoU .38 + false
        (20, 20): [],  # miss
    }

    def fake_detect(img: np.ndarray) -> list[Detection]:
        ys, xs = np.nonzero(img[:, :, 0])
        return answers[(int(xs.min()), int(ys.min()))]

    r = eval_detector(tmp_path, fake_detect, warmup=0)
    assert r["overall"]["images"] == 3 and r["overall"]["plates"] == 3
    assert r["overall"]["recall@0.3"] == pytest.approx(2 / 3, abs=1e-3)
    assert r["overall"]["recall@0.5"] == pytest.approx(1 / 3, abs=1e-3)
    assert r["overall"]["false_per_image"] == pytest.approx(1 / 3, abs=1e-3)
    assert r["regions"]["us"]["recall@0.3"] == 1.0 and r["regions"]["eu"]["recall@0.3"] == 0.0
    assert r["regions"]["us"]["false_per_image"] == 0.5
    table = format_table(r)
    assert "| all | 3 | 66.7% | 33.3% | 0.333 |" in table
    assert "| eu | 1 | 0.0% | 0.0% | 0.000 |" in table


def test_read_annotations_groups_boxes_per_file(tmp_path: Path) -> None:
    (tmp_path / "annotations.csv").write_text(HEADER + "x.jpg,A,1,2,3,4,br,9,9,s\nx.jpg,B,5,6,7,8,br,9,9,s\n")
    assert read_annotations(tmp_path) == {"x.jpg": ("br", [Box(1, 2, 3, 4), Box(5, 6, 7, 8)])}
    with pytest.raises(FileNotFoundError):
        read_annotations(tmp_path / "nowhere")


@pytest.mark.usefixtures("runtime")
def test_run_eval_with_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_set(tmp_path / "set", [("a.png", Box(32, 64, 48, 80), "us"), ("b.png", Box(16, 16, 32, 32), "eu")])
    cfg = config.parse({"detector": {"model_path": str(MODELS / "tiny_yolo_cf.tflite"), "min_plate_width_px": 1,
                                     "score_min": 0.5}})
    out_json = tmp_path / "r.json"
    status = run_eval(argparse.Namespace(data=str(tmp_path / "set"), json=str(out_json)), cfg)
    assert status == 0
    assert "| all | 2 | 100.0% | 100.0% | 0.000 |" in capsys.readouterr().out
    assert json.loads(out_json.read_text())["overall"]["recall@0.3"] == 1.0


def test_run_eval_fails_cleanly_without_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config.parse({"detector": {"model_path": str(tmp_path / "none.tflite")}})
    assert run_eval(argparse.Namespace(data=str(tmp_path), json=None), cfg) == 2
    assert "none.tflite" in capsys.readouterr().err
