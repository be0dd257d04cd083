"""The MQTT open command: which messages on ``<prefix>/<camera>/gate/set`` pulse the gate; and the
Home Assistant discovery documents, which announce what the agent publishes but never the command.

Only a live (not retained) message, for a gate camera, with exactly the configured payload, and
at most one per ``command_min_interval_s``; the relay adds its own busy and cooldown rules.
Who may publish there at all is the broker's business (TLS, a username, its ACL: see config.py).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..lograte import RateLimitedLog

logger = logging.getLogger(__name__)

WARN_EVERY_S = 10.0  # a flood of rejected commands logs one line per this long
REASONS = ("retained", "camera", "payload", "too_soon", "busy", "error")


class GateCommands:
    """Judges each received command and calls ``open_gate(camera)`` (True: the relay pulsed)."""

    def __init__(
        self,
        payload: str,
        cameras: Sequence[str],
        open_gate: Callable[[str], bool],
        *,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        warn_every_s: float = WARN_EVERY_S,
    ) -> None:
        self._payload = payload.encode("utf-8")
        self._cameras = set(cameras)
        self._open_gate = open_gate
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._last = float("-inf")  # when a command last reached the relay
        self._warn = RateLimitedLog(logger, warn_every_s, clock)
        self.accepted = 0
        self.rejected = dict.fromkeys(REASONS, 0)

    def handle(self, topic: str, payload: bytes, retained: bool) -> bool:
        """True when the gate was pulsed. Called on paho's network thread only."""
        parts = topic.split("/")
        cam = parts[-3] if len(parts) >= 3 else ""
        now = self._clock()
        if retained:  # a retained command would reopen the gate on every reconnect
            return self._reject("retained", topic)
        if cam not in self._cameras:
            return self._reject("camera", topic)
        if not hmac.compare_digest(payload, self._payload):
            return self._reject("payload", topic)
        if now - self._last < self._min_interval_s:
            return self._reject("too_soon", topic)
        self._last = now
        try:
            opened = self._open_gate(cam)
        except Exception:
            logger.exception("mqtt gate command failed camera=%s", cam)
            return self._reject("error", topic)
        if not opened:  # the relay is on or cooling down
            return self._reject("busy", topic)
        self.accepted += 1
        logger.info("mqtt gate command opened the gate camera=%s", cam)
        return True

    def _reject(self, reason: str, topic: str) -> bool:
        self.rejected[reason] += 1
        self._warn(logging.WARNING, "mqtt gate command rejected reason=%s topic=%s", reason, topic[:200])
        return False

    def stats(self) -> dict[str, object]:
        return {"commands": self.accepted, "commands_rejected": sum(self.rejected.values()),
                "commands_rejected_by": {k: v for k, v in self.rejected.items() if v}}


# One Home Assistant event per vehicle pass: an update of a pass renders "" (HA ignores an empty
# payload), an unread pass is its own type; the rest of the JSON becomes the event's attributes.
EVENT_TYPES = ["open", "deny", "none", "unread"]
EVENT_TEMPLATE = (
    "{% if value_json.type != 'update' %}{{ {"
    "'event_type': 'unread' if value_json.type == 'unread' else value_json.action, "
    "'plate': value_json.plate, 'action': value_json.action, 'direction': value_json.direction, "
    "'rule': value_json.rule, 'reason': value_json.reason, 'late': value_json.late, "
    "'pass_id': value_json.pass_id, 'event_id': value_json.event_id, 'decided_at': value_json.decided_at"
    "} | to_json }}{% endif %}"
)
# diagnostic sensors on the retained status document (<prefix>/status/summary): key, name, template
DIAGNOSTICS = [
    ("reader_state", "Reader state", "{{ value_json.reader.state }}", {"icon": "mdi:cloud-check"}),
    ("quota_used", "Reader quota used",
     "{{ value_json.reader.quota.used if value_json.reader.quota else 'None' }}",
     {"state_class": "measurement", "unit_of_measurement": "lookups", "icon": "mdi:counter"}),
    ("reader_outbox", "Reader outbox depth",
     "{{ value_json.reader.outbox.depth if value_json.reader.outbox else 0 }}",
     {"state_class": "measurement", "unit_of_measurement": "crops", "icon": "mdi:tray-full"}),
    ("mqtt_outbox", "MQTT outbox depth", "{{ value_json.mqtt.outbox }}",
     {"state_class": "measurement", "unit_of_measurement": "messages", "icon": "mdi:tray-full"}),
]


def discovery(client_id: str, prefix: str, discovery_prefix: str, cameras: Sequence[str],
              gate_cameras: Sequence[str], *, crop_topic: bool = False) -> list[tuple[str, bytes]]:
    """Retained Home Assistant entities: each camera's last plate and its passes (an ``event``
    entity), its last crop (an ``image``, when crops go to ``<camera>/crop``), each gate camera's
    gate state, and the agent's diagnostic sensors (from the status document).
    The open button is not announced: its payload is the command's secret, and discovery is there
    for every reader of the broker. A button an earlier version announced is removed (empty config)."""
    node = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in client_id)
    dp = discovery_prefix.rstrip("/")
    device = {"identifiers": [node], "name": f"Plate agent {node}", "manufacturer": "plate-agent"}
    common = {"availability_topic": f"{prefix}/status", "device": device}
    out: list[tuple[str, bytes]] = []
    for cam in cameras:
        base = f"{prefix}/{cam}"
        configs: list[tuple[str, dict[str, Any]]] = [(f"sensor/{node}/{cam}_plate", {
            "name": f"{cam} last plate", "unique_id": f"{node}_{cam}_plate", "state_topic": f"{base}/event",
            "value_template": "{{ value_json.plate }}", "json_attributes_topic": f"{base}/event",
            "icon": "mdi:car"}), (f"event/{node}/{cam}_pass", {
            "name": f"{cam} vehicle pass", "unique_id": f"{node}_{cam}_pass", "state_topic": f"{base}/event",
            "event_types": EVENT_TYPES, "value_template": EVENT_TEMPLATE, "icon": "mdi:car-arrow-right"})]
        if crop_topic:
            configs.append((f"image/{node}/{cam}_crop", {
                "name": f"{cam} last crop", "unique_id": f"{node}_{cam}_crop", "image_topic": f"{base}/crop",
                "content_type": "image/jpeg"}))
        if cam in gate_cameras:
            configs.append((f"binary_sensor/{node}/{cam}_gate", {
                "name": f"{cam} gate", "unique_id": f"{node}_{cam}_gate", "state_topic": f"{base}/gate",
                "payload_on": "ON", "payload_off": "OFF", "device_class": "opening"}))
            out.append((f"{dp}/button/{node}/{cam}_open/config", b""))
        out += [(f"{dp}/{path}/config", json.dumps({**conf, **common}).encode()) for path, conf in configs]
    for key, name, template, extra in DIAGNOSTICS:
        conf = {"name": name, "unique_id": f"{node}_{key}", "state_topic": f"{prefix}/status/summary",
                "value_template": template, "entity_category": "diagnostic", **extra, **common}
        out.append((f"{dp}/sensor/{node}/{key}/config", json.dumps(conf).encode()))
    return out


__all__ = ["EVENT_TEMPLATE", "EVENT_TYPES", "GateCommands", "discovery"]
