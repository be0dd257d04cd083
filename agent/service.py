"""Composition root: builds every stage from the config, owns the threads, the stop event and the
shutdown order. The only module that knows concrete classes.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import cv2

from .config import CameraConfig, Config, state_dir
from .motion import MotionGate
from .notify import Notifier
from .pipeline import CameraPipeline, Dispatcher, Sink
from .types import PlateCrop, PlateRead

if TYPE_CHECKING:
    from .sources import FrameSource
    from .status import StatusBoard, StatusServer

logger = logging.getLogger(__name__)

SHUTDOWN_JOIN_S = 3.0  # all threads together; the shutdown stays inside 5 s
READER_CLOSE_S = 1.0  # an upload still in flight is kept in the outbox and read after a restart
STALL_S = 30.0  # a thread that has not turned for this long is wedged: the watchdog pings stop
STATUS_LINE_S = 10.0  # how often STATUS= is refreshed


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
        source_factory: Callable[[CameraConfig], FrameSource] | None = None,
        stall_s: float = STALL_S,
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop or threading.Event()
        self.notifier = notifier or Notifier()
        self.extra_sinks = list(extra_sinks)
        self.stop_when_sources_end = stop_when_sources_end
        self.relay_kw = relay_kw or {}  # tests: pin_factory=MockFactory()
        self.source_factory = source_factory  # tests: a fake camera
        self.stall_s = stall_s
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
        self.mqtt: Any = None
        self.board: StatusBoard | None = None
        self.status_server: StatusServer | None = None
        self._reload = threading.Event()
        self._stalled: list[str] = []
        self._mqtt_was_up = False
        self._last_summary = float("-inf")

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
        self._start_status()
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
        self.mqtt = next((s for s in sinks if hasattr(s, "publish_summary")), None)
        self.dispatcher = Dispatcher(
            decider, [*sinks, *self.extra_sinks], self._answered, min_score=cfg.rules.min_score
        )
        dispatcher = self.dispatcher
        # closed after the reader and before the sinks: passes still open get their event
        def close_passes() -> None:
            dispatcher.tick(everything=True)

        self.closers.append(("open-passes", close_passes))
        submit_for = self._build_reader()
        for cam in cfg.cameras:
            factory = functools.partial(self.source_factory, cam) if self.source_factory else None
            frames = capture.Capture(cam, self.stop_event, source_factory=factory)
            self.captures[cam.id] = frames
            self.closers.append((f"capture-{cam.id}", frames.close))
            detector = detect.create_detector(cam.detector)
            self.closers.append((f"detector-{cam.id}", detector.close))
            pipe = CameraPipeline(
                cam,
                frames,
                MotionGate(cam.motion, cam.zones),
                detector,
                crop.Cropper(cam.crop),
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

    def _start_status(self) -> None:
        """The status board always (MQTT summary, tests); the HTTP server when enabled.

        A status port already taken is logged, not fatal: the gate matters more than its report.
        """
        from .status import StatusBoard, StatusServer, known_secrets

        cfg = self.cfg
        self.board = StatusBoard(
            self.stats,
            frame_timeout_s={c.id: c.read_timeout_s for c in cfg.cameras},
            reader_type=cfg.reader.type,
            reader_rate_per_s=cfg.reader.rate_per_s,
            summary=self.summary,
            secrets=known_secrets(cfg),
        )
        if not cfg.status.enabled:
            return
        server = StatusServer(cfg.status, self.board)
        try:
            server.start()
        except OSError as err:
            logger.error("status server disabled: cannot listen on %s:%d: %s", cfg.status.bind, cfg.status.port, err)
            return
        self.status_server = server
        self.closers.append(("status-server", server.close))  # closed first: it reads every part

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
            if self.board is not None:
                self.board.sample({cid: p.counters["frames"] for cid, p in self.pipelines.items()})
            self._publish_summary()
            if time.monotonic() - last_status >= STATUS_LINE_S:
                last_status = time.monotonic()
                self.notifier.status(self.summary())
            if self.stop_when_sources_end and self.drained():
                logger.info("all sources ended and every frame and read was handled")
                break
        return 0

    def healthy(self) -> bool:
        """Every thread alive and turning: the watchdog pings only then, so systemd restarts a
        wedged agent. A dead camera, reader or broker is not wedged: their threads keep turning."""
        stalled = self.stalled()
        if stalled != self._stalled:
            if stalled:
                logger.error("threads stalled or dead: %s (watchdog pings stop)", ",".join(stalled))
            else:
                logger.info("every thread turns again")
            self._stalled = stalled
        return not stalled

    def stalled(self) -> list[str]:
        """Names of the threads that died or have not turned for ``stall_s``."""
        now, limit = time.monotonic(), self.stall_s
        bad = [t.name for t in self.threads if not t.is_alive()]
        bad += [f"pipeline-{cid}" for cid, p in self.pipelines.items() if now - p.last_progress > limit]
        for cid, cap in self.captures.items():
            if not cap.ended and (not cap.supervising or now - cap.last_progress > limit):
                bad.append(f"capture-{cid}")
        if self.reader is not None:
            # one upload may block for its timeouts before the loop turns again
            slack = self.cfg.reader.timeout_connect_s + self.cfg.reader.timeout_read_s
            if now - self.reader.last_progress > limit + slack:
                bad.append("reader")
        bad += [type(s).__name__ for s in self.sinks if not getattr(s, "alive", True)]
        if self.status_server is not None and not self.status_server.alive:
            bad.append("status-http")
        return bad

    def status(self) -> dict[str, Any]:
        """The /status document (also the retained MQTT summary)."""
        if self.board is None:
            raise RuntimeError("Service.status: not started")
        return self.board.document()

    def _publish_summary(self) -> None:
        """Retained ``<prefix>/status/summary`` every mqtt_interval_s, and at once after a (re)connect."""
        every = self.cfg.status.mqtt_interval_s
        if self.mqtt is None or self.board is None or every <= 0:
            return
        now, connected = time.monotonic(), self.mqtt.connected
        due = connected and (not self._mqtt_was_up or now - self._last_summary >= every)
        self._mqtt_was_up = connected
        if due:
            payload = json.dumps(self.board.document(), separators=(",", ":")).encode()
            if self.mqtt.publish_summary(payload):
                self._last_summary = now

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
        connected = sum(1 for c in self.captures.values() if c.connected)
        line = (
            f"cameras {connected}/{len(self.captures)} connected, frames {totals.get('frames', 0)}, "
            f"motion {totals.get('motion_frames', 0)}, plates {totals.get('detections', 0)}, "
            f"uploads {totals.get('uploads', 0)}, events {events}"
        )
        if self.reader is not None:
            r = self.reader.stats()
            line += f", reader {r['state']}, outbox {r['outbox']['depth']}"
        if self.mqtt is not None:
            line += f", mqtt {'up' if self.mqtt.connected else 'down'}"
        return line

    def stats(self) -> dict[str, Any]:
        cameras = {}
        for cid, pipe in self.pipelines.items():
            cap, counts = self.captures[cid].stats(), pipe.stats()
            cameras[cid] = {**cap, **counts, "frames_in": cap["frames"], "frames_processed": counts.get("frames", 0)}
        reader = None
        if self.reader is not None:
            alive = all(t.is_alive() for t in self.threads if t.name == "reader")
            reader = {**self.reader.stats(), "alive": alive}
        return {
            "cameras": cameras,
            "reader": reader,
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
