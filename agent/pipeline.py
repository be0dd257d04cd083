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
from .cropstore import CropStore
from .motion import MotionGate, point_allowed
from .statics import StaticObjects, look_of
from .track import CONFIDENT, EMPTY, FAILED, UNSURE, PlateTracks, Sighting
from .types import Box, Decision, Detection, Frame, Image, PassEnd, PlateCrop, PlateRead

if TYPE_CHECKING:
    from .detect import PlateDetector
    from .sinks import Sink

logger = logging.getLogger(__name__)


class FrameSlot(Protocol):
    def latest(self, after_seq: int, timeout: float) -> Frame | None: ...

    @property
    def ended(self) -> bool: ...


class IdleSwitch(Protocol):
    """The camera's source: decode only keyframes while nothing moves (agent.sources.IdleDecoding)."""

    def set_idle(self, idle: bool) -> None: ...


class Cropper(Protocol):
    def crop(self, frame: Frame, detection: Detection) -> PlateCrop | None: ...

    def encode(self, crop: PlateCrop) -> PlateCrop: ...


class UploadFrames(Protocol):
    """Where the full frame of each upload goes (the event history's ``FrameShelf``)."""

    def expect(self, crop: PlateCrop) -> None: ...

    def keep(self, frame: Frame, crop: PlateCrop) -> None: ...

    def forget(self, crop: PlateCrop) -> None: ...


class Decider(Protocol):
    def observe(self, read: PlateRead) -> list[Decision]: ...

    def expire(self, everything: bool = False) -> list[Decision]: ...

    def unread(self, end: PassEnd) -> list[Decision]: ...


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
        statics: StaticObjects | None = None,
        on_unread: Callable[[PassEnd], object] | None = None,
        uploads: UploadFrames | None = None,
        live: Callable[[Frame, Sequence[Box]], None] | None = None,
        idle: IdleSwitch | None = None,
    ) -> None:
        self.cam = cam
        self.frames = frames
        self.motion = motion
        self.detector = detector
        self.cropper = cropper
        self.submit = submit
        self.stop = stop
        self.clock = clock
        self.tracks = PlateTracks(cam.upload, statics, cam.id)
        self.on_unread = on_unread
        self.uploads = uploads  # the event history keeps the frame of each upload
        self.live = live  # the console's live view: each processed frame and its detections
        self.idle = idle  # told when the motion gate has seen nothing for its hold time, and when it sees motion
        self.counters: Counter[str] = Counter()
        self.last_progress = clock()  # the watchdog checks this moves
        self.last_seq = -1  # the newest frame fully processed
        self._answers: queue.SimpleQueue[tuple[PlateCrop, str]] = queue.SimpleQueue()
        self._min_interval = 0.9 / cam.fps_max  # slack for capture-time jitter
        # while nothing moves, look less often: halves the idle cost, a car still wakes it in 0.2 s
        self._idle_interval = max(self._min_interval, 0.9 / cam.idle_fps_max)
        self._moving = False
        self._last_processed = float("-inf")
        crop = cam.crop
        self._store = CropStore(Path(crop.save_dir), max_files=crop.save_max_files,
                                max_mb=crop.save_max_mb) if crop.save_dir else None

    def answered(self, crop: PlateCrop, outcome: str) -> None:
        """Thread-safe: the read of ``crop`` came back (confident | unsure | empty | failed);
        handled on the pipeline thread."""
        self._answers.put((crop, outcome))

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
            crop, outcome = self._answers.get_nowait()
            self.tracks.answered(crop, outcome)
        now = frame.mono_time
        for end in self.tracks.expire(now):
            if self.on_unread is not None:
                self.on_unread(end)
        interval = self._min_interval if self._moving else self._idle_interval
        if now - self._last_processed < interval:
            self.counters["frames_skipped"] += 1
            return []
        self._last_processed = now
        self.counters["frames"] += 1
        moved = self.motion.update(frame.image, now)
        self._moving = moved.active
        if self.idle is not None and not self.motion.warming:  # the gate has a background to judge by
            self.idle.set_idle(not moved.active)
        if not moved.active:
            # nothing moves anywhere: a frame looked at without a sighting (a pass last seen
            # driving has gone on; one standing where nothing moves stays)
            self.tracks.offer_frame([], now, ())
            if self.live is not None:
                self.live(frame, ())
            return []
        self.counters["motion_frames"] += 1
        roi = Box.enclosing(moved.regions) if moved.regions else None  # the detector decides its use
        items = []
        kept = self._keep(self.detector.detect(frame.image, roi), frame.image)
        if self.live is not None:
            self.live(frame, [d.box for d in kept])
        for det in kept:
            cropped = self.cropper.crop(frame, det)
            self.counters["crops"] += cropped is not None
            items.append((cropped, self._sighting(frame, det.box, moved.regions)))
        sent = []
        for tagged in self.tracks.offer_frame(items, now, moved.regions):
            tagged = self.cropper.encode(tagged)  # the JPEG only for what is sent
            if self.uploads is not None:
                self.uploads.expect(tagged)  # before the reader can answer: the store waits for the frame
            try:
                if self.submit(tagged):
                    self.counters["uploads"] += 1
                    sent.append(tagged)
                    if self.uploads is not None:
                        self.uploads.keep(frame, tagged)  # encoded while the upload is on its way
                    self._save(tagged)
                else:
                    self.counters["drops"] += 1
                    self.answered(tagged, FAILED)
            finally:
                if self.uploads is not None:
                    self.uploads.forget(tagged)  # no frame is waited for after this (kept, or none comes)
        return sent

    def _sighting(self, frame: Frame, box: Box, regions: Sequence[Box]) -> Sighting:
        """What the upload gate needs of one detection: where, its look, moving now, whole."""
        h, w = frame.image.shape[:2]
        m = self.cam.upload.edge_margin_px
        whole = box.x1 >= m and box.y1 >= m and box.x2 <= w - m and box.y2 <= h - m
        includes = [z for z in self.cam.zones if z.kind == "include"]
        if whole and includes:  # a plate crossing an include zone's border is cut too
            corners = ((box.x1, box.y1), (box.x2, box.y1), (box.x1, box.y2), (box.x2, box.y2))
            whole = all(point_allowed(includes, x / w, y / h) for x, y in corners)
        moving = any(r.intersects(box) for r in regions)
        return Sighting(box, look_of(frame.image, box), frame.mono_time, moving, whole)

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
        self.counters["detections"] += len(keep)
        return keep

    def _save(self, crop: PlateCrop) -> None:
        if self._store is None:
            return
        name = f"{self.cam.id}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(crop.wall_time))}"
        try:
            self._store.save(f"{name}-{crop.frame_seq}.jpg", crop.jpeg)
        except OSError as err:
            self.counters["errors"] += 1
            logger.warning("cannot save crop dir=%s error=%s", self._store.folder, err)

    def stats(self) -> dict[str, object]:
        """Counters (``held_<why>``: crops the upload gate kept back) and the static objects."""
        return {**self.counters, **self.tracks.counters,
                "static_objects": self.tracks.statics.snapshot(self.clock())}


class Dispatcher:
    """Reads -> decisions -> sinks. The relay (first sink) is served before anything else.

    ``outcomes`` maps a camera id to its upload gate's ``answered``: the one route by which the gate
    learns whether a crop was read confidently.
    """

    def __init__(
        self,
        decider: Decider,
        sinks: Sequence[Sink],
        outcomes: Mapping[str, Callable[[PlateCrop, str], None]] | None = None,
        min_score: float = 0.0,
    ) -> None:
        self.decider = decider
        self.sinks = list(sinks)
        self.outcomes = outcomes if outcomes is not None else {}
        self.min_score = min_score
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()  # reads come from the reader and from pipeline threads

    def answer(self, crop: PlateCrop, reads: Sequence[PlateRead] | None) -> None:
        """Everything the reader made of one crop (an empty list: no plate found; None: no answer
        now, the crop was parked or dropped)."""
        gate = self.outcomes.get(crop.camera_id)
        if gate is not None:
            gate(crop, self.outcome(reads))
        for read in reads or []:
            self.handle(read)

    def outcome(self, reads: Sequence[PlateRead] | None) -> str:
        """What an answer means to the upload gate: confident | unsure | empty | failed."""
        if reads is None:
            return FAILED
        if not reads:
            return EMPTY
        return CONFIDENT if any(not r.plate or r.score >= self.min_score for r in reads) else UNSURE

    def unread(self, end: PassEnd) -> list[Decision]:
        """A vehicle pass ended with no plate read: its one event (thread-safe)."""
        with self._lock:
            return self._decide(self.decider.unread, end)

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
