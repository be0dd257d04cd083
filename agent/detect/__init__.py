"""Stage 3: the on-device plate detector. A frame (and optionally its motion region) in,
plate boxes in frame pixels out.

Backends are listed in ``DETECTORS``. Backend modules import their runtime (LiteRT, tflite-runtime)
only when a detector is built, so importing this package never loads one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..errors import DetectorError
from ..types import Box, Detection, Image
from .bundled import BUNDLED_MODEL, bundled_model_path, model_path
from .shared import CameraDetector, SharableDetector, SharedDetectors
from .tflite import TFLiteDetector

if TYPE_CHECKING:
    from ..config import DetectorConfig


class PlateDetector(Protocol):
    """Finds licence plates in a BGR frame. Not thread-safe: cameras share one through
    ``SharedDetectors``."""

    def detect(self, image: Image, roi: Box | None = None) -> list[Detection]:
        """Plates in ``image`` (frame pixels), best first; ``roi`` is the motion region, if any."""
        ...

    def close(self) -> None:
        """Release the model; idempotent."""
        ...


DETECTORS: dict[str, Callable[[DetectorConfig], SharableDetector]] = {"tflite": TFLiteDetector}


def create_detector(cfg: DetectorConfig) -> SharableDetector:
    """Build the configured detector; raises DetectorError when it cannot be loaded."""
    try:
        factory = DETECTORS[cfg.type]
    except KeyError:
        raise DetectorError(
            f"detector.type: unknown detector {cfg.type!r} (known: {', '.join(sorted(DETECTORS))})"
        ) from None
    return factory(cfg)


def instances(cfg: DetectorConfig, cpu_count: int | None = None) -> int:
    """How many models to load: ``instances``, or with 0 one per ``num_threads`` cores."""
    if cfg.instances:
        return cfg.instances
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // cfg.num_threads)


def create_shared(cfg: DetectorConfig, cameras: Sequence[str]) -> SharedDetectors:
    """The models every camera shares, in turn; raises DetectorError when one cannot be loaded."""
    models: list[SharableDetector] = []
    try:
        for _ in range(instances(cfg)):
            models.append(create_detector(cfg))
    except BaseException:
        for m in models:
            m.close()
        raise
    return SharedDetectors(models, cameras)


__all__ = [
    "BUNDLED_MODEL",
    "DETECTORS",
    "CameraDetector",
    "SharableDetector",
    "SharedDetectors",
    "PlateDetector",
    "TFLiteDetector",
    "bundled_model_path",
    "create_detector",
    "create_shared",
    "instances",
    "model_path",
]
