"""Composition root: the one module that knows concrete classes. Builds every part from the config
into typed, frozen sets of parts. Each part has a stable name (``relay``, ``mqtt``, ``webhook-1``,
``reader``, ``camera:<id>``) under which it is closed, reported and counted.

The answer path is one-way: reader -> ``Dispatcher.answer`` -> decisions -> sinks (relay first),
and the dispatcher hands each crop's outcome back to its camera's upload gate.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .sources import Capture, IdleDecoding, backend_for, make_source
from .config import Config
from .environ import state_dir
from .crop import Cropper
from .decide import Decider
from .detect import CameraDetector, SharedDetectors, create_shared
from .history import FILENAME as HISTORY_FILE
from .history import EventStore
from .history.frames import FrameShelf
from .pipeline import CameraPipeline, Dispatcher
from .read import READERS, DetectOnlyReader, ReadStage
from .read.outbox import Outbox
from .read.worker import ReadWorker
from .rulefile import RulesFile
from .rules import AccessRules
from .sinks.mqtt import MqttSink
from .sinks.relay import Gate
from .sinks.webhook import WebhookSink
from .stagetime import StageTimes
from .timed import TimedCropper, TimedDetector, TimedMotion, TimedReader, TimedSink
from .statics import StaticObjects
from .status import StatusBoard, StatusServer, known_secrets
from .timebase import ClockSync, Timebase
from .types import PlateCrop, PlateRead
from .web.api import Console
from .web.api import Parts as ConsoleParts
from .web.auth import Access
from .web.live import LiveFrames

if TYPE_CHECKING:
    from .config import CameraConfig
    from .sinks import Sink
    from .sources import FrameSource

logger = logging.getLogger(__name__)

RELAY, MQTT, READER, STATUS, STORE, DETECTOR = "relay", "mqtt", "reader", "status", "store", "detector"
READER_CLOSE_S = 1.0  # an upload still in flight is kept in the outbox and read after a restart

Closers = list[tuple[str, Callable[[], None]]]  # (part name, close), closed in reverse order
SourceFactory = Callable[["CameraConfig"], "FrameSource"]


def webhook_name(n: int) -> str:
    return f"webhook-{n}"


def camera_name(camera_id: str) -> str:
    return f"camera:{camera_id}"


@dataclass(frozen=True)
class Webhook:
    name: str
    sink: WebhookSink


@dataclass(frozen=True)
class Outputs:
    """The configured sinks, started."""

    relay: Gate | None
    mqtt: MqttSink | None
    webhooks: tuple[Webhook, ...]

    def sinks(self) -> list[Sink]:
        """In serving order: the relay first, so the gate never waits for the network."""
        first: list[Sink] = [s for s in (self.relay, self.mqtt) if s is not None]
        return first + [w.sink for w in self.webhooks]


@dataclass(frozen=True)
class Camera:
    id: str
    name: str
    capture: Capture
    detector: CameraDetector
    pipeline: CameraPipeline
    times: StageTimes  # decode, motion, detector, crop
    decoding: IdleDecoding  # keyframes only while nothing moves: its mode and counts


@dataclass(frozen=True)
class Parts:
    """Every part of the running agent; threads are built, not started."""

    clock: ClockSync
    rules: AccessRules
    decider: Decider
    outputs: Outputs
    dispatcher: Dispatcher
    reader: ReadStage
    cameras: tuple[Camera, ...]
    threads: tuple[threading.Thread, ...]
    store: EventStore | None = None  # the event history, a sink served after the outputs
    live: LiveFrames | None = None  # the console's last frame per camera, kept only while a page looks
    detectors: SharedDetectors | None = None  # None: no camera
    times: StageTimes = dataclasses.field(default_factory=StageTimes)  # read, sinks

    def camera(self, camera_id: str) -> Camera:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


@dataclass(frozen=True)
class Status:
    """The status document and, when enabled, its HTTP server (not started)."""

    board: StatusBoard
    server: StatusServer | None


def build(
    cfg: Config,
    stop: threading.Event,
    closers: Closers,
    *,
    extra_sinks: Sequence[Sink] = (),
    relay_kw: Mapping[str, object] | None = None,
    source_factory: SourceFactory | None = None,
    timebase: Timebase | None = None,
) -> Parts:
    """Build every part; each one that needs closing is added to ``closers`` as soon as it exists,
    so the caller closes what was built when a later part fails."""
    timebase = timebase or Timebase()
    clock = ClockSync(cfg.clock.trusted, timebase.clock_source)
    rules = AccessRules(cfg.rules, synchronised=clock.synchronised)
    rules.load()  # a broken rules file stops the start, not the first car
    decider = Decider(cfg.decision, rules)
    outputs = build_outputs(cfg, state_dir(cfg.storage), closers, relay_kw=relay_kw, clock=clock)
    store = build_store(cfg, clock, closers)  # closed after the passes still open have given their events
    upload_gates: dict[str, Callable[[PlateCrop, str], None]] = {}  # filled below, before any thread runs
    last = [store] if store is not None else []
    times = StageTimes()
    sinks = [TimedSink(s, times) for s in [*outputs.sinks(), *extra_sinks, *last]]
    dispatcher = Dispatcher(decider, sinks, upload_gates,
                            min_score=cfg.decision.min_score)

    def close_passes() -> None:  # after the reader, before the sinks: passes still open get their event
        dispatcher.tick(everything=True)

    closers.append(("open-passes", close_passes))
    reader, threads = _build_reader(cfg, dispatcher, stop, closers, timebase, clock, store, times)
    live = LiveFrames({cam.id: cam.zones for cam in cfg.cameras}) if cfg.console.enabled else None
    if live is not None:
        closers.append(("live", live.close))
    cameras: list[Camera] = []
    shared = create_shared(cfg.detector, [c.id for c in cfg.cameras]) if cfg.cameras else None
    if shared is not None:  # one model for every camera (~27 MB each), loaded before any camera opens
        closers.append((DETECTOR, shared.close))  # after the cameras' views: closed last of them
        for cam in cfg.cameras:
            pipe = _build_camera(cfg, cam, shared, dispatcher, reader, stop, closers, source_factory, cameras,
                                 store.frames if store is not None else None, live)
            upload_gates[cam.id] = pipe.answered
            threads.append(threading.Thread(target=pipe.run, name=f"pipeline-{cam.id}", daemon=True))
    return Parts(clock, rules, decider, outputs, dispatcher, reader, tuple(cameras), tuple(threads), store, live,
                 shared, times)


def _build_camera(
    cfg: Config, cam: CameraConfig, shared: SharedDetectors, dispatcher: Dispatcher, reader: ReadStage,
    stop: threading.Event, closers: Closers, source_factory: SourceFactory | None, cameras: list[Camera],
    shelf: FrameShelf | None, live: LiveFrames | None,
) -> CameraPipeline:
    name = camera_name(cam.id)
    backend = backend_for(cam)  # the pipeline sets ``decoding``, every connection's source reads it
    decoding = IdleDecoding(cam.idle_keyframes and backend == "pyav", backend)
    if source_factory is not None:
        factory = functools.partial(source_factory, cam)
    else:
        factory = functools.partial(make_source, cam, decoding)
    times = StageTimes()
    frames = Capture(cam, stop, source_factory=factory, times=times)
    closers.append((f"{name}/capture", frames.close))
    detector = shared.camera(cam.id, cam.detector)
    closers.append((f"{name}/detector", detector.close))
    statics = StaticObjects(cam.upload.static_ttl_s, cam.upload.look_max_diff,
                            state_dir(cfg.storage) / f"static-objects-{cam.id}.json")
    pipe = CameraPipeline(cam, frames, TimedMotion(cam, times), TimedDetector(detector, times),
                          TimedCropper(Cropper(cam.crop), times), reader.submit, stop,
                          statics=statics, on_unread=dispatcher.unread,
                          uploads=shelf,
                          live=live.offer if live else None, idle=decoding)
    cameras.append(Camera(cam.id, name, frames, detector, pipe, times, decoding))
    return pipe


def build_store(cfg: Config, clock: ClockSync, closers: Closers) -> EventStore | None:
    """The event history, started (its thread waits on its queue; nothing runs while nothing comes)."""
    if not cfg.history.enabled:
        return None
    store = EventStore(cfg.history, state_dir(cfg.storage) / HISTORY_FILE, synchronised=clock.synchronised,
                       frames=FrameShelf() if cfg.history.save_frames else None)
    closers.append((STORE, store.close))
    store.start()
    return store


def build_outputs(
    cfg: Config, state: Path, closers: Closers, *, relay_kw: Mapping[str, object] | None = None,
    clock: ClockSync | None = None,
) -> Outputs:
    """Build and start the configured sinks, relay first."""
    clock = clock or ClockSync(cfg.clock.trusted)
    relay = None
    if cfg.relay.type != "none":
        relay = Gate.from_config(cfg.relay, **(relay_kw or {}))
        closers.append((RELAY, relay.close))
        relay.start()
    mqtt = None
    if cfg.mqtt.enabled:
        cams = [c.id for c in cfg.cameras]
        gate_cams = (cfg.relay.cameras or cams) if relay is not None else []
        open_gate = _operator_command(relay) if relay is not None else None
        mqtt = MqttSink(cfg.mqtt, cfg.storage, state, cameras=cams, gate_cameras=gate_cams, open_gate=open_gate,
                        clock_synchronised=clock.synchronised)
        closers.append((MQTT, mqtt.close))
        mqtt.start()
        if relay is not None:
            relay.add_state_listener(mqtt.publish_gate_state)
            mqtt.publish_gate_state(relay.is_on)
    webhooks = []
    for n, hook in enumerate(cfg.webhooks, 1):
        sink = WebhookSink(hook, hook_id=n)
        closers.append((webhook_name(n), sink.close))
        sink.start()
        webhooks.append(Webhook(webhook_name(n), sink))
    return Outputs(relay, mqtt, tuple(webhooks))


def _operator_command(relay: Gate) -> Callable[[str], bool]:
    def open_gate(camera_id: str) -> bool:
        """An operator's open command (MQTT command topic); False when the relay is busy or cooling down."""
        return relay.pulse(camera_id, reason="command")

    return open_gate


def _build_reader(
    cfg: Config, dispatcher: Dispatcher, stop: threading.Event, closers: Closers, timebase: Timebase,
    clock: ClockSync, store: EventStore | None, times: StageTimes,
) -> tuple[ReadStage, list[threading.Thread]]:
    """The reader stage and its thread; without a configured reader, detections answer themselves."""
    if cfg.reader.type == "none":
        return DetectOnlyReader(dispatcher.answer), []
    per_camera = {cam.id: cam.reader for cam in cfg.cameras}
    client = READERS[cfg.reader.type](cfg.reader, cameras=per_camera)
    closers.append((f"{READER}/client", client.close))
    outbox = Outbox.from_config(cfg.storage, boot_id=timebase.boot_id, synchronised=clock.synchronised)
    closers.append((f"{READER}/outbox", outbox.close))
    outbox.open()  # now: a damaged file is moved aside, an unwritable one kept in memory, before any crop
    answer: Callable[[PlateCrop, Sequence[PlateRead] | None], None] = dispatcher.answer
    if store is not None:
        answer = _paid_and_answered(dispatcher, store)
    worker = ReadWorker(TimedReader(client, times), outbox, cfg.reader, answer, stop,
                        max_decision_age_s=cfg.decision.max_decision_age_s)
    closers.append((READER, lambda: worker.close(timeout_s=READER_CLOSE_S)))
    # daemon: an upload stuck in a slow server must not hold the process at exit
    return worker, [threading.Thread(target=worker.run, name=READER, daemon=True)]


def _paid_and_answered(
    dispatcher: Dispatcher, store: EventStore
) -> Callable[[PlateCrop, Sequence[PlateRead] | None], None]:
    def answer(crop: PlateCrop, reads: Sequence[PlateRead] | None) -> None:
        """Every answered upload was paid for: the decision first (the gate), then the store's record."""
        dispatcher.answer(crop, reads)
        store.paid(crop, reads)

    return answer


def build_status(
    cfg: Config, stats: Callable[[], dict[str, object]], summary: Callable[[], str], parts: Parts | None = None
) -> Status:
    """The status board, and its server with the console's API when ``parts`` is given."""
    board = StatusBoard(
        stats,
        frame_timeout_s={c.id: c.read_timeout_s for c in cfg.cameras},
        reader_type=cfg.reader.type,
        reader_rate_per_s=cfg.reader.rate_per_s,
        summary=summary,
        secrets=known_secrets(cfg),
    )
    console = None
    if parts is not None and cfg.console.enabled:
        rules_file = RulesFile(Path(cfg.rules.file), parts.rules.reload) if cfg.rules.file else None
        console = Console(ConsoleParts(parts.rules, rules_file, board, parts.store, parts.live),
                          Access(cfg.console, cfg.status.bind))
    return Status(board, StatusServer(cfg.status, board, console) if cfg.status.enabled else None)


__all__ = ["Camera", "Outputs", "Parts", "Status", "Webhook", "build", "build_outputs", "build_status",
           "build_store", "camera_name", "webhook_name"]
