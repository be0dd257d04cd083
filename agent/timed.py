"""Stage wrappers that add their time to a ``StageTimes`` (see agent/stagetime.py); the wiring puts
them around the parts it builds, so the stages themselves stay free of bookkeeping."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .crop import Cropper
from .motion import MotionGate
from .stagetime import StageTimes
from .types import Box, Decision, Detection, Frame, Image, Motion, PlateCrop, PlateRead

if TYPE_CHECKING:
    from .config import CameraConfig
    from .detect import PlateDetector
    from .read import PlateReader, Usage
    from .sinks import Sink


class TimedMotion(MotionGate):
    def __init__(self, cam: CameraConfig, times: StageTimes) -> None:
        super().__init__(cam.motion, cam.zones)
        self._times = times

    def update(self, image: Image, now: float | None = None) -> Motion:
        with self._times.measure("motion"):
            return super().update(image, now)


class TimedDetector:
    """The wait for the shared detector's turn included: what the pipeline pays."""

    def __init__(self, detector: PlateDetector, times: StageTimes) -> None:
        self._detector, self._times = detector, times

    def detect(self, image: Image, roi: Box | None = None) -> list[Detection]:
        with self._times.measure("detector"):
            return self._detector.detect(image, roi)

    def close(self) -> None:
        self._detector.close()


class TimedCropper:
    def __init__(self, cropper: Cropper, times: StageTimes) -> None:
        self._cropper, self._times = cropper, times

    def crop(self, frame: Frame, detection: Detection) -> PlateCrop | None:
        with self._times.measure("crop"):
            return self._cropper.crop(frame, detection)

    def encode(self, crop: PlateCrop) -> PlateCrop:
        with self._times.measure("crop"):
            return self._cropper.encode(crop)


class TimedReader:
    def __init__(self, reader: PlateReader, times: StageTimes) -> None:
        self._reader, self._times = reader, times

    def read(self, crop: PlateCrop) -> list[PlateRead]:
        with self._times.measure("read"):
            return self._reader.read(crop)

    def usage(self) -> Usage | None:
        return self._reader.usage()

    def close(self) -> None:
        self._reader.close()


class TimedSink:
    def __init__(self, sink: Sink, times: StageTimes) -> None:
        self._sink, self._times = sink, times

    def send(self, decision: Decision) -> None:
        with self._times.measure("sinks"):
            self._sink.send(decision)

    def close(self) -> None:
        self._sink.close()

