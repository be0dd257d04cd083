"""Stages 2-4 per camera (latest frame -> motion -> detect -> crop -> upload gate), and the one
answer path: reader -> ``Dispatcher.answer`` -> decisions -> sinks (relay first), and the outcome
back to the camera's upload gate.

Parts are injected as callables/protocols; only the wiring knows the concrete classes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .config import CameraConfig
from .motion import MotionGate, point_allowed
from .track import PlateTracks
from .types import Box, Decision, Detection, Frame, Image, PlateCrop, PlateRead

if TYPE_CHECKING:
    from .detect import PlateDetector
    from .sinks import Sink

logger = logging.getLogger(__name__)


class FrameSlot(Protocol):
    def latest(self, after_seq: int, timeout: float) -> Frame | None: ...

    @property
    def ended(self) -> bool: ...


class Cropper(Protocol):
    def crop(self, frame: Frame, detection: Detection) -> PlateCrop | None: ...


class Decider(Protocol):
    def observe(self, read: PlateRead) -> list[Decision]: ...

    def expire(self, everything: bool = False) -> list[Decision]: ...


class CameraPipeline:
    """One camera's processing loop, run on its own thread (``pipeline-<id>``)."""

    def __init__(
        self,
        cam: CameraConfig,
        frames: FrameSlot,
        motion: MotionGate,
        detector: PlateDetector,
        cropper: Cropper,
        submit: Callable[[PlateCrop], bool],
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cam = cam
        self.frames = frames
        self.motion = motion
        self.detector = detector
        self.cropper = cropper
        self.submit = submit
        self.stop = stop
        self.clock = clock
        self.tracks = PlateTracks(cam.upload)
        self.counters: Counter[str] = Counter()
        self.last_progress = clock()  # the watchdog checks this moves
        self.last_seq = -1  # the newest frame fully processed
        self._answers: queue.SimpleQueue[tuple[PlateCrop, bool]] = queue.SimpleQueue()
        self._min_interval = 0.9 / cam.fps_max  # slack for capture-time jitter
        # while nothing moves, look less often: halves the idle cost, a car still wakes it in 0.2 s
        self._idle_interval = max(self._min_interval, 0.9 / cam.idle_fps_max)
        self._moving = False
        self._last_processed = float("-inf")
        self._save_dir = Path(cam.crop.save_dir) if cam.crop.save_dir else None

    def answered(self, crop: PlateCrop, confident: bool) -> None:
        """Thread-safe: the outcome of ``crop`` (read, or refused by the reader); the upload gate
        learns it on the pipeline thread, from here only."""
        self._answers.put((crop, confident))

    def run(self) -> None:
        seq = -1
        while not self.stop.is_set():
            self.last_progress = self.clock()
            frame = self.frames.latest(seq, timeout=0.5)
            if frame is None:
                if self.frames.ended:  # a file that has played out: idle until stopped
                    self.stop.wait(0.5)
                continue
            seq = frame.seq
            try:
                self.step(frame)
            except Exception:  # one bad frame must not end the camera's pipeline
                self.counters["errors"] += 1
                logger.exception("pipeline step failed camera=%s seq=%d", self.cam.id, frame.seq)
            self.last_seq = seq

    def step(self, frame: Frame) -> list[PlateCrop]:
        """Process one frame; returns the crops handed to the reader."""
        while not self._answers.empty():
            crop, confident = self._answers.get_nowait()
            self.tracks.answered(crop, confident)
        now = frame.mono_time
        self.tracks.expire(now)
        interval = self._min_interval if self._moving else self._idle_interval
        if now - self._last_processed < interval:
            self.counters["frames_skipped"] += 1
            return []
        self._last_processed = now
        self.counters["frames"] += 1
        moved = self.motion.update(frame.image, now)
        self._moving = moved.active
        if not moved.active:
            return []
        self.counters["motion_frames"] += 1
        roi = Box.enclosing(moved.regions) if moved.regions else None  # the detector decides its use
        detections = self.detector.detect(frame.image, roi)
        detections = self._keep(detections, frame.image)
        self.counters["detections"] += len(detections)
        sent = []
        for det in detections:
            cropped = self.cropper.crop(frame, det)
            if cropped is None:
                continue
            self.counters["crops"] += 1
            tagged = self.tracks.offer(cropped, now)
            if tagged is None:
                continue
            if self.submit(tagged):
                self.counters["uploads"] += 1
                sent.append(tagged)
                self._save(tagged)
            else:
                self.counters["drops"] += 1
                self.answered(tagged, confident=False)
        return sent

    def _keep(self, detections: list[Detection], image: Image) -> list[Detection]:
        """Detections whose centre lies where the camera's zones allow plates."""
        h, w = image.shape[:2]
        keep = []
        for d in detections:
            cx, cy = d.box.centre
            if self.cam.zones and not point_allowed(self.cam.zones, cx / w, cy / h):
                self.counters["detections_zoned_out"] += 1
                continue
            keep.append(d)
        return keep

    def _save(self, crop: PlateCrop) -> None:
        if self._save_dir is None:
            return
        name = f"{self.cam.id}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(crop.wall_time))}"
        try:
            self._save_dir.mkdir(parents=True, exist_ok=True)
            (self._save_dir / f"{name}-{crop.frame_seq}.jpg").write_bytes(crop.jpeg)
        except OSError as err:
            self.counters["errors"] += 1
            logger.warning("cannot save crop dir=%s error=%s", self._save_dir, err)

    def stats(self) -> dict[str, object]:
        return dict(self.counters)


class Dispatcher:
    """Reads -> decisions -> sinks. The relay (first sink) is served before anything else.

    ``outcomes`` maps a camera id to its upload gate's ``answered``: the one route by which the gate
    learns whether a crop was read confidently.
    """

    def __init__(
        self,
        decider: Decider,
        sinks: Sequence[Sink],
        outcomes: Mapping[str, Callable[[PlateCrop, bool], None]] | None = None,
        min_score: float = 0.0,
    ) -> None:
        self.decider = decider
        self.sinks = list(sinks)
        self.outcomes = outcomes if outcomes is not None else {}
        self.min_score = min_score
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()  # reads come from the reader and from pipeline threads

    def answer(self, crop: PlateCrop, reads: Sequence[PlateRead]) -> None:
        """Everything the reader made of one crop (an empty list: no plate found, or no answer now)."""
        confident = any(not r.plate or r.score >= self.min_score for r in reads)
        gate = self.outcomes.get(crop.camera_id)
        if gate is not None:
            gate(crop, confident)
        for read in reads:
            self.handle(read)

    def handle(self, read: PlateRead) -> list[Decision]:
        with self._lock:
            self.counters["reads"] += 1
            return self._decide(self.decider.observe, read)

    def tick(self, everything: bool = False) -> list[Decision]:
        """End passes that went quiet (about once a second; ``everything`` at shutdown)."""
        with self._lock:
            return self._decide(self.decider.expire, everything)

    def _decide(self, step: Callable[[Any], list[Decision]], arg: Any) -> list[Decision]:
        try:
            decisions = step(arg)
        except Exception:
            self.counters["errors"] += 1
            logger.exception("decision failed")
            return []
        for decision in decisions:
            self.counters["events"] += 1
            for sink in self.sinks:
                try:
                    sink.send(decision)
                except Exception:  # one broken sink must not starve the others
                    self.counters["sink_errors"] += 1
                    logger.exception("sink failed sink=%s", type(sink).__name__)
        return decisions

    def stats(self) -> dict[str, object]:
        return dict(self.counters)
