"""Where the detector's model file comes from: the configured path or the bundled default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import DetectorConfig

# file name of the default model (package data in agent/detect/model/); built by models/build_model.py,
# documented in models/README.md
BUNDLED_MODEL = "plate_yolov8n_512x384_drq.tflite"


def bundled_model_path(name: str = BUNDLED_MODEL) -> Path:
    """The default model, installed with the package (agent/detect/model/)."""
    return Path(__file__).resolve().parent / "model" / name


def model_path(cfg: DetectorConfig) -> Path:
    """The model file a config asks for ("" = the bundled model)."""
    return Path(cfg.model_path).expanduser() if cfg.model_path else bundled_model_path()
