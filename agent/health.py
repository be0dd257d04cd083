"""How the running agent is doing: the stats behind ``/status``, the one-line summary (systemd
``STATUS=``), the stall check behind the systemd watchdog, and the retained MQTT summary.

Reads the parts the wiring built; changes none of them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .dbfile import MEMORY

if TYPE_CHECKING:
    from .sinks.mqtt import MqttSink
    from .status import StatusServer
    from .wiring import Parts

logger = logging.getLogger(__name__)

STALL_S = 30.0  # a thread that has not turned for this long is wedged: the watchdog pings stop
STATUS_HTTP = "status-http"  # the status server's thread name (agent.status starts it, the watchdog here checks it)


class Report:
    """The parts' figures, each under its part's name, and the summary line."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def stats(self) -> dict[str, object]:
        parts, outputs = self._parts, self._parts.outputs
        cameras: dict[str, object] = {}
        for cam in parts.cameras:
            cap, counts = cam.capture.stats(), cam.pipeline.stats()
            cameras[cam.id] = {**cap, **counts, **cam.detector.stats(), "stages": cam.times.snapshot(),
                               "decoding": cam.decoding.stats(),
                               "frames_in": cap["frames"],
                               "frames_processed": counts.get("frames", 0)}
        return {
            "cameras": cameras,
            "detector": parts.detectors.stats() if parts.detectors is not None else None,
            "stages": parts.times.snapshot(),  # read, sinks
            "reader": parts.reader.stats(),
            "dispatch": parts.dispatcher.stats(),
            "decide": parts.decider.stats(),
            "rules": parts.rules.stats(),
            "clock": parts.clock.stats(),
            "relay": outputs.relay.stats() if outputs.relay is not None else None,
            "mqtt": outputs.mqtt.stats() if outputs.mqtt is not None else None,
            "webhooks": {w.name: w.sink.stats() for w in outputs.webhooks},
            "history": parts.store.stats() if parts.store is not None else None,
        }

    def summary(self) -> str:
        parts = self._parts
        totals: dict[str, int] = {}
        for cam in parts.cameras:
            for k, v in cam.pipeline.counters.items():
                totals[k] = totals.get(k, 0) + v
        connected = sum(1 for cam in parts.cameras if cam.capture.connected)
        line = (
            f"cameras {connected}/{len(parts.cameras)} connected, frames {totals.get('frames', 0)}, "
            f"motion {totals.get('motion_frames', 0)}, plates {totals.get('detections', 0)}, "
            f"uploads {totals.get('uploads', 0)}, events {parts.dispatcher.counters['events']}"
        )
        r = parts.reader.stats()
        if r is not None:
            line += f", reader {r['state']}, outbox {r['outbox']['depth']}"
            if r["outbox"].get("storage") == MEMORY:
                line += " IN MEMORY"
        mqtt = parts.outputs.mqtt
        if mqtt is not None:
            line += f", mqtt {'up' if mqtt.connected else 'down'}"
            if mqtt.stats().get("outbox_storage") == MEMORY:
                line += " (outbox IN MEMORY)"
        return line


class Watchdog:
    """Every thread alive and turning: the systemd watchdog is pinged only then, so systemd restarts
    a wedged agent. A dead camera, reader or broker is not wedged: their threads keep turning (an
    MQTT sink whose callbacks keep failing is: it is not ``alive``)."""

    def __init__(
        self,
        parts: Parts,
        status: StatusServer | None,
        *,
        stall_s: float = STALL_S,
        reader_slack_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parts = parts
        self._status = status
        self.stall_s = stall_s
        self._reader_slack_s = reader_slack_s  # one upload may block for its timeouts between turns
        self._clock = clock
        self._stalled: list[str] = []

    def healthy(self) -> bool:
        """True when nothing is stalled; logs each change."""
        stalled = self.stalled()
        if stalled != self._stalled:
            if stalled:
                logger.error("threads stalled or dead: %s (watchdog pings stop)", ",".join(stalled))
            else:
                logger.info("every thread turns again")
            self._stalled = stalled
        return not stalled

    def stalled(self) -> list[str]:
        """Names of the threads and parts that died or have not turned for ``stall_s``."""
        parts, now, limit = self._parts, self._clock(), self.stall_s
        bad = [t.name for t in parts.threads if not t.is_alive()]
        bad += [f"pipeline-{cam.id}" for cam in parts.cameras if now - cam.pipeline.last_progress > limit]
        for cam in parts.cameras:
            cap = cam.capture
            if not cap.ended and (not cap.supervising or now - cap.last_progress > limit):
                bad.append(f"capture-{cam.id}")
        if now - parts.reader.last_progress > limit + self._reader_slack_s:
            bad.append("reader")
        outputs = parts.outputs
        # a relay that has not answered for as long as a stall is dead, though its thread turns
        if outputs.relay is not None and (not outputs.relay.alive or outputs.relay.failing_s() > limit):
            bad.append("relay")
        if outputs.mqtt is not None and not outputs.mqtt.alive:
            bad.append("mqtt")
        bad += [w.name for w in outputs.webhooks if not w.sink.alive]
        if parts.store is not None and not parts.store.alive:
            bad.append("history")
        if self._status is not None and not self._status.alive:
            bad.append(STATUS_HTTP)
        return bad


class SummaryPublisher:
    """Retained ``<prefix>/status/summary`` every ``every_s``, and at once after a (re)connect."""

    def __init__(
        self,
        mqtt: MqttSink | None,
        document: Callable[[], Mapping[str, object]],
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mqtt = mqtt
        self._document = document
        self._every_s = every_s
        self._clock = clock
        self._was_up = False
        self._last = float("-inf")

    def tick(self) -> None:
        mqtt = self._mqtt
        if mqtt is None or self._every_s <= 0:
            return
        now, connected = self._clock(), mqtt.connected
        due = connected and (not self._was_up or now - self._last >= self._every_s)
        self._was_up = connected
        if due:
            payload = json.dumps(self._document(), separators=(",", ":")).encode()
            if mqtt.publish_summary(payload):
                self._last = now


__all__ = ["STALL_S", "Report", "SummaryPublisher", "Watchdog"]
