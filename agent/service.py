"""Composition root: builds every stage from the config, owns the threads, the stop event and the
shutdown order. The only module that knows concrete classes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2

from .config import Config, state_dir
from .motion import MotionGate
from .notify import Notifier
from .pipeline import CameraPipeline, Dispatcher, Sink
from .types import PlateCrop, PlateRead

logger = logging.getLogger(__name__)

SHUTDOWN_JOIN_S = 3.0  # all threads together; the shutdown stays inside 5 s
READER_CLOSE_S = 1.0  # an upload still in flight is kept in the outbox and read after a restart


class Service:
    """The running agent. ``start()`` builds and starts everything; ``run()`` blocks until stopped."""

    def __init__(
        self,
        cfg: Config,
        *,
        extra_sinks: Sequence[Sink] = (),
        notifier: Notifier | None = None,
        stop: threading.Event | None = None,
        stop_when_sources_end: bool = False,
        relay_kw: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop or threading.Event()
        self.notifier = notifier or Notifier()
        self.extra_sinks = list(extra_sinks)
        self.stop_when_sources_end = stop_when_sources_end
        self.relay_kw = relay_kw or {}  # tests: pin_factory=MockFactory()
        self.sinks: list[Any] = []
        self.decider: Any = None
        self.captures: dict[str, Any] = {}
        self.pipelines: dict[str, CameraPipeline] = {}
        self.threads: list[threading.Thread] = []
        self.closers: list[tuple[str, Callable[[], None]]] = []  # closed in reverse order
        self.reader: Any = None
        self.rules: Any = None
        self.relay: Any = None
        self.dispatcher: Dispatcher | None = None
        self._reload = threading.Event()

    # ------------------------------------------------------------ building

    def start(self) -> None:
        """Build every part; raises AgentError subclasses on anything that cannot start."""
        # per-frame work is small and each camera has its own thread: OpenCV's thread pool only
        # adds scheduling cost (measured: 0.75 -> 0.59 ms CPU per motion frame at 720p)
        cv2.setNumThreads(1)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        for t in self.threads:
            t.start()
        for frames in self.captures.values():
            frames.start()
        self.notifier.ready(self.summary())
        logger.info("agent started cameras=%s reader=%s", ",".join(self.captures), self.cfg.reader.type)

    def _build(self) -> None:
        from . import capture, crop, decide, detect, rules
        from .sinks import build_sinks

        cfg = self.cfg
        self.rules = rules.AccessRules(cfg.rules)
        self.rules.load()  # a broken rules file stops the start, not the first car
        decider = decide.Decider(cfg.rules, self.rules)
        sinks = build_sinks(cfg, state_dir(cfg.storage), open_gate=self._open_gate, **self.relay_kw)
        for sink in sinks:
            self.closers.append((type(sink).__name__, sink.close))
        self.sinks = sinks
        self.decider = decider
        self.relay = next((s for s in sinks if getattr(s, "is_relay", False)), None)
        self.dispatcher = Dispatcher(
            decider, [*sinks, *self.extra_sinks], self._answered, min_score=cfg.rules.min_score
        )
        dispatcher = self.dispatcher
        # closed after the reader and before the sinks: passes still open get their event
        self.closers.append(("open-passes", lambda: dispatcher.tick(everything=True)))
        submit_for = self._build_reader()
        for cam in cfg.cameras:
            frames = capture.Capture(cam, self.stop_event)
            self.captures[cam.id] = frames
            self.closers.append((f"capture-{cam.id}", frames.close))
            detector = detect.create_detector(cam.detector)
            self.closers.append((f"detector-{cam.id}", detector.close))
            pipe = CameraPipeline(
                cam,
                frames,
                MotionGate(cam.motion, cam.zones),
                detector,
                crop.Cropper(cam.crop, cam.detector.min_plate_width_px),
                submit_for,
                self.stop_event,
            )
            self.pipelines[cam.id] = pipe
            self.threads.append(threading.Thread(target=pipe.run, name=f"pipeline-{cam.id}", daemon=True))

    def _build_reader(self) -> Callable[[PlateCrop], bool]:
        """The reader worker when one is configured; else detections become text-less reads."""
        if self.cfg.reader.type == "none":
            return self._detected_only
        from .read import READERS
        from .read.outbox import Outbox
        from .read.worker import ReadWorker

        per_camera = {cam.id: cam.reader for cam in self.cfg.cameras}
        reader = READERS[self.cfg.reader.type](self.cfg.reader, cameras=per_camera)
        self.closers.append(("reader-client", reader.close))
        outbox = Outbox.from_config(self.cfg.storage)
        outbox.open()  # fail fast on an unwritable state directory
        self.closers.append(("reader-outbox", outbox.close))
        assert self.dispatcher is not None
        self.reader = ReadWorker(
            reader,
            outbox,
            self.cfg.reader,
            on_result=self.dispatcher.answer,
            stop=self.stop_event,
            max_decision_age_s=self.cfg.rules.max_decision_age_s,
        )
        self.closers.append(("reader", lambda: self.reader.close(timeout_s=READER_CLOSE_S)))
        # daemon: an upload stuck in a slow server must not hold the process at exit
        self.threads.append(threading.Thread(target=self.reader.run, name="reader", daemon=True))
        return self.reader.submit  # type: ignore[no-any-return]

    def _detected_only(self, crop: PlateCrop) -> bool:
        assert self.dispatcher is not None
        d = crop.detection
        read = PlateRead(
            camera_id=crop.camera_id,
            plate="",
            score=0.0,
            dscore=d.score,
            box=d.box,
            wall_time=crop.wall_time,
            mono_time=crop.mono_time,
            crop=crop,
        )
        self.dispatcher.answer(crop, [read])
        return True

    def _answered(self, crop: PlateCrop, confident: bool) -> None:
        pipe = self.pipelines.get(crop.camera_id)
        if pipe is not None:
            pipe.answered(crop, confident)

    def _open_gate(self, camera_id: str) -> None:
        """An operator's open command (MQTT command topic)."""
        if self.relay is not None:
            logger.info("gate opened by command camera=%s", camera_id)
            self.relay.pulse(camera_id)

    # ------------------------------------------------------------ running

    def run(self) -> int:
        """Supervise until stopped: watchdog pings while healthy, rules reloads, status line."""
        interval = self.notifier.watchdog_s / 3 if self.notifier.watchdog_s else 5.0
        interval = min(interval, 1.0)
        last_status = 0.0
        while not self.stop_event.wait(interval):
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            if self.dispatcher is not None:
                self.dispatcher.tick()
            if self.healthy():
                self.notifier.watchdog()
            if time.monotonic() - last_status >= 10.0:
                last_status = time.monotonic()
                self.notifier.status(self.summary())
            if self.stop_when_sources_end and self.drained():
                logger.info("all sources ended and every frame and read was handled")
                break
        return 0

    def healthy(self) -> bool:
        """Every thread alive and every pipeline loop turning (a wedged one stops the pings)."""
        now = time.monotonic()
        if any(not t.is_alive() for t in self.threads):
            return False
        return all(now - p.last_progress < 30.0 for p in self.pipelines.values())

    def drained(self) -> bool:
        """Every (file) source has ended, its last frame was processed and no read is pending."""
        for cid, frames in self.captures.items():
            if not frames.ended or self.pipelines[cid].last_seq < frames.stats()["seq"]:
                return False
        return self.reader is None or self.reader.idle()

    def request_reload(self) -> None:
        """Signal-safe: reload the access rules on the supervisor thread."""
        self._reload.set()

    def _do_reload(self) -> None:
        if self.rules is None:
            return
        try:
            self.rules.reload()
            logger.info("rules reloaded")
        except Exception as err:  # keep the rules we have rather than lose the gate
            logger.error("rules reload failed, keeping the previous rules: %s", err)

    def request_stop(self) -> None:
        """Signal-safe."""
        self.stop_event.set()

    def summary(self) -> str:
        totals: dict[str, int] = {}
        for p in self.pipelines.values():
            for k, v in p.counters.items():
                totals[k] = totals.get(k, 0) + v
        events = self.dispatcher.counters["events"] if self.dispatcher else 0
        connected = sum(1 for c in self.captures.values() if c.stats().get("connected"))
        return (
            f"cameras {connected}/{len(self.captures)} connected, frames {totals.get('frames', 0)}, "
            f"motion {totals.get('motion_frames', 0)}, plates {totals.get('detections', 0)}, "
            f"uploads {totals.get('uploads', 0)}, events {events}"
        )

    def stats(self) -> dict[str, Any]:
        return {
            "cameras": {
                cid: {**self.captures[cid].stats(), **self.pipelines[cid].stats()}
                for cid in self.pipelines
            },
            "reader": self.reader.stats() if self.reader else None,
            "dispatch": self.dispatcher.stats() if self.dispatcher else {},
            "decide": self.decider.stats() if self.decider else {},
            "rules": self.rules.stats() if self.rules else {},
            "sinks": {type(s).__name__: s.stats() for s in self.sinks},
        }

    # ------------------------------------------------------------ stopping

    def close(self) -> None:
        """Stop every thread and close every part, newest first. Idempotent."""
        self.notifier.stopping()
        self.stop_event.set()
        deadline = time.monotonic() + SHUTDOWN_JOIN_S
        for t in self.threads:
            if t.is_alive() or t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    logger.warning("thread did not stop in time name=%s", t.name)
        while self.closers:
            name, close = self.closers.pop()
            try:
                close()
            except Exception:
                logger.exception("close failed part=%s", name)
        self.notifier.close()


def log_config_warnings(cfg: Config) -> None:
    """Warn about files other users can read that may hold secrets or access lists."""
    paths = [cfg.path, cfg.rules.file]
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and os.path.isdir(cred_dir):
        paths += [os.path.join(cred_dir, n) for n in os.listdir(cred_dir)]
    for p in paths:
        try:
            if p and os.stat(p).st_mode & 0o004:
                logger.warning("file is world-readable path=%s (chmod o-r)", p)
        except OSError:
            pass
