"""Detector test fixtures: the kilobyte fixture models (tests/fixtures/models) and configs.

The ``runtime`` fixture (tests/fixtures_tflite.py) skips, or fails in CI, without a TFLite runtime."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agent.config import DetectorConfig

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"


def tiny_cfg(name: str = "tiny_yolo_cf.tflite", **kw: Any) -> DetectorConfig:
    """Config for a fixture model: every cell of its 8x8 grid is an 8 px "plate" candidate."""
    base = DetectorConfig(model_path=str(MODELS / name), score_min=0.5, min_plate_width_px=1, num_threads=1)
    return dataclasses.replace(base, **kw)
