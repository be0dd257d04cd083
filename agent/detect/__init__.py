"""Stage 3: the on-device plate detector. A frame (and optionally its motion region) in,
plate boxes in frame pixels out.

Backends are listed in ``DETECTORS``. Backend modules import their runtime (LiteRT, tflite-runtime)
only when a detector is built, so importing this package never loads one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import DetectorError
from ..types import Box, Detection, Image
from .bundled import BUNDLED_MODEL, bundled_model_path, model_path
from .tflite import TFLiteDetector

if TYPE_CHECKING:
    from ..config import DetectorConfig


class PlateDetector(Protocol):
    """Finds licence plates in a BGR frame. Not thread-safe: one instance per pipeline thread."""

    def detect(self, image: Image, roi: Box | None = None) -> list[Detection]:
        """Plates in ``image`` (frame pixels), best first; ``roi`` is the motion region, if any."""
        ...

    def close(self) -> None:
        """Release the model; idempotent."""
        ...


DETECTORS: dict[str, Callable[[DetectorConfig], PlateDetector]] = {"tflite": TFLiteDetector}


def create_detector(cfg: DetectorConfig) -> PlateDetector:
    """Build the configured detector; raises DetectorError when it cannot be loaded."""
    try:
        factory = DETECTORS[cfg.type]
    except KeyError:
        raise DetectorError(
            f"detector.type: unknown detector {cfg.type!r} (known: {', '.join(sorted(DETECTORS))})"
        ) from None
    return factory(cfg)


__all__ = [
    "BUNDLED_MODEL",
    "DETECTORS",
    "PlateDetector",
    "TFLiteDetector",
    "bundled_model_path",
    "create_detector",
    "model_path",
]
