"""MQTT sink (paho-mqtt 2.x): QoS 1 events via a durable outbox, availability with a last will,
retained gate state, an optional open command topic and Home Assistant discovery.

Topics: ``<prefix>/status`` (online/offline, retained), ``<prefix>/<camera>/event`` (JSON),
``<prefix>/<camera>/crop`` (JPEG, optional), ``<prefix>/<camera>/gate`` (ON/OFF, retained),
``<prefix>/<camera>/gate/set`` (command, off by default). An event leaves the outbox only on PUBACK.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import MqttConfig, StorageConfig, secret
from ..errors import SinkError
from ..events import decision_payload
from ..outbox import Outbox, OutboxError
from ..types import Decision
from . import crop_jpeg

logger = logging.getLogger(__name__)

EARLY_ACK_KEEP_S = 30.0  # PUBACKs that beat the bookkeeping are remembered this long
CLOSE_FLUSH_S = 1.0  # on close, wait this long for "offline" to reach the broker


class MqttSink:
    """Built by the wiring; ``start`` connects in the background (paho's own loop thread)."""

    def __init__(
        self,
        cfg: MqttConfig,
        storage: StorageConfig,
        state_dir: Path,
        *,
        cameras: Sequence[str] = (),
        gate_cameras: Sequence[str] = (),
        open_gate: Callable[[str], None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._cfg = cfg
        self._cameras = list(cameras)
        self._gate_cameras = list(gate_cameras)
        self._open_gate = open_gate
        self._environ = environ
        self._outbox = Outbox(Path(state_dir) / "mqtt-outbox.sqlite3", storage)
        self.client_id = cfg.client_id or f"plate-agent-{socket.gethostname()}"
        p = cfg.prefix.rstrip("/")
        self.status_topic = f"{p}/status"
        self._prefix = p
        self._client: Any = None
        self._lock = threading.Lock()
        self._mids: dict[int, int] = {}  # paho mid -> outbox row id, until PUBACK
        self._early: dict[int, float] = {}  # mids acked before they were booked
        self._handed: set[int] = set()  # rows paho holds (it resends them after a reconnect)
        self._gate_on: bool | None = None
        self._connected = False
        self._closed = False
        self._counts = dict.fromkeys(
            ("events", "acked", "rejected", "publish_errors", "connects", "connect_failures",
             "disconnects", "commands", "commands_rejected"), 0)
        self._last_error = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the outbox, queue what an earlier run left in it, and connect in the background."""
        import paho.mqtt.client as mqtt

        try:
            self._outbox.open()
        except OutboxError as err:
            raise SinkError(f"mqtt: {err}") from err
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_publish, c.on_message = self._on_publish, self._on_message
        c.will_set(self.status_topic, "offline", qos=1, retain=True)
        c.reconnect_delay_set(max(1, round(self._cfg.reconnect_min_s)), max(1, round(self._cfg.reconnect_max_s)))
        if self._cfg.username:
            c.username_pw_set(self._cfg.username, secret("MQTT_PASSWORD", self._environ))
        if self._cfg.tls:
            try:
                c.tls_set(ca_certs=self._cfg.ca_file or None)
            except (OSError, ValueError) as err:
                raise SinkError(f"mqtt: TLS set-up failed (ca_file={self._cfg.ca_file!r}): {err}") from err
        self._client = c
        left = self._outbox.pending(limit=100_000)
        if left:
            logger.info("mqtt outbox replay items=%d", len(left))
        for item in left:
            self._hand(item.id, item.key, item.body, int(item.meta.get("qos", self._cfg.qos)))
        try:
            c.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        except (OSError, ValueError) as err:
            raise SinkError(f"mqtt: cannot connect to {self._cfg.host}:{self._cfg.port}: {err}") from err
        c.loop_start()

    def close(self) -> None:
        """Publish ``offline`` (a clean disconnect sends no will), disconnect, stop; idempotent."""
        if self._closed:
            return
        self._closed = True
        c = self._client
        if c is not None:
            if self._connected:
                try:
                    c.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(CLOSE_FLUSH_S)
                except (RuntimeError, ValueError):
                    pass
            c.disconnect()
            c.loop_stop()
        self._outbox.close()

    # ------------------------------------------------------------ sink

    def send(self, decision: Decision) -> None:
        """Store in the outbox, then hand to paho (non-blocking); the broker's PUBACK deletes it."""
        body = decision_payload(decision)
        jpeg = crop_jpeg(decision)
        if jpeg is not None and self._cfg.publish_crop == "base64":
            body["crop_jpeg_base64"] = base64.b64encode(jpeg).decode("ascii")
        msgs = [(f"{self._prefix}/{decision.camera_id}/event", json.dumps(body, separators=(",", ":")).encode())]
        if jpeg is not None and self._cfg.publish_crop == "topic":
            msgs.append((f"{self._prefix}/{decision.camera_id}/crop", jpeg))
        self._counts["events"] += 1
        for topic, payload in msgs:
            try:
                row = self._outbox.put(topic, payload, {"qos": self._cfg.qos, "event_id": decision.event_id})
            except OutboxError as err:  # disk trouble: still try to deliver, just not durably
                self._counts["publish_errors"] += 1
                logger.error("mqtt outbox write failed, publishing without it: %s", err)
                row = 0
            self._hand(row, topic, payload, self._cfg.qos)

    def _hand(self, row: int, topic: str, payload: bytes, qos: int) -> None:
        import paho.mqtt.client as mqtt

        if self._client is None:
            return  # not started: the row waits in the outbox for start()
        # never hold self._lock while calling paho: its network thread calls on_publish under its own lock
        info = self._client.publish(topic, payload, qos=qos)
        queued = info.rc == mqtt.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN)
        if not queued:
            self._counts["publish_errors"] += 1
            logger.warning("mqtt publish not queued topic=%s rc=%s (retried on reconnect)", topic, info.rc)
            return
        with self._lock:
            if info.mid in self._early or (info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published()):
                self._early.pop(info.mid, None)
                self._acked(row)
            else:
                self._mids[info.mid] = row
                self._handed.add(row)

    def _acked(self, row: int) -> None:
        self._counts["acked"] += 1
        self._handed.discard(row)
        if row:
            try:
                self._outbox.delete(row)
            except OutboxError as err:
                logger.error("mqtt outbox delete failed row=%d: %s", row, err)

    def publish_gate_state(self, on: bool) -> None:
        """Relay state listener: retained ON/OFF on each gate camera's ``gate`` topic."""
        self._gate_on = on
        if self._client is None:
            return
        for cam in self._gate_cameras:
            self._client.publish(f"{self._prefix}/{cam}/gate", "ON" if on else "OFF", qos=1, retain=True)

    def publish_summary(self, payload: bytes) -> bool:
        """The status document, retained on ``<prefix>/status/summary``; skipped while disconnected
        (paho would queue every missed one)."""
        c = self._client
        if c is None or not self._connected:
            return False
        return bool(c.publish(f"{self._prefix}/status/summary", payload, qos=1, retain=True).rc == 0)

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._connected = False
            self._counts["connect_failures"] += 1
            self._last_error = f"connect refused: {reason_code}"
            logger.error("mqtt connect refused host=%s reason=%s", self._cfg.host, reason_code)
            return
        self._connected = True
        self._counts["connects"] += 1
        logger.info("mqtt connected host=%s port=%d", self._cfg.host, self._cfg.port)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        if self._cfg.command_topic and self._open_gate is not None:
            client.subscribe(f"{self._prefix}/+/gate/set", qos=1)
        if self._cfg.ha_discovery:
            self._publish_discovery(client)
        if self._gate_on is not None:
            self.publish_gate_state(self._gate_on)
        with self._lock:
            handed = set(self._handed)
        for item in self._outbox.pending(limit=100_000):  # rows paho refused earlier (queue full, qos 0)
            if item.id not in handed:
                self._hand(item.id, item.key, item.body, int(item.meta.get("qos", self._cfg.qos)))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._connected:
            self._counts["disconnects"] += 1
            if getattr(reason_code, "is_failure", True):  # not our own disconnect() at close
                self._last_error = f"disconnected: {reason_code}"
            logger.warning("mqtt disconnected reason=%s (reconnecting)", reason_code)
        self._connected = False

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._lock:
            row = self._mids.pop(mid, None)
            if row is None:
                now = time.monotonic()
                self._early = {m: t for m, t in self._early.items() if now - t < EARLY_ACK_KEEP_S}
                self._early[mid] = now
                return
            if reason_code is not None and reason_code.is_failure:  # MQTT 5 only; resending will not help
                self._counts["rejected"] += 1
                logger.error("mqtt broker rejected a message reason=%s", reason_code)
            self._acked(row)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        cam = parts[-3] if len(parts) >= 3 else ""
        ok = (not msg.retain  # a retained command would reopen the gate on every reconnect
              and msg.payload.decode("utf-8", "replace") == self._cfg.command_payload
              and cam in self._gate_cameras and self._open_gate is not None)
        if not ok:
            self._counts["commands_rejected"] += 1
            logger.warning("mqtt gate command ignored topic=%s retain=%s", msg.topic, msg.retain)
            return
        self._counts["commands"] += 1
        logger.info("mqtt gate command camera=%s", cam)
        try:
            assert self._open_gate is not None
            self._open_gate(cam)
        except Exception:
            logger.exception("open_gate failed camera=%s", cam)

    def _publish_discovery(self, client: Any) -> None:
        node = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in self.client_id)
        dp = self._cfg.discovery_prefix.rstrip("/")
        device = {"identifiers": [node], "name": f"Plate agent {node}", "manufacturer": "plate-agent"}
        common = {"availability_topic": self.status_topic, "device": device}
        for cam in self._cameras:
            base = f"{self._prefix}/{cam}"
            configs: list[tuple[str, dict[str, Any]]] = [(f"sensor/{node}/{cam}_plate", {
                "name": f"{cam} last plate", "unique_id": f"{node}_{cam}_plate", "state_topic": f"{base}/event",
                "value_template": "{{ value_json.plate }}", "json_attributes_topic": f"{base}/event",
                "icon": "mdi:car"})]
            if cam in self._gate_cameras:
                configs.append((f"binary_sensor/{node}/{cam}_gate", {
                    "name": f"{cam} gate", "unique_id": f"{node}_{cam}_gate", "state_topic": f"{base}/gate",
                    "payload_on": "ON", "payload_off": "OFF", "device_class": "opening"}))
                if self._cfg.command_topic and self._open_gate is not None:
                    configs.append((f"button/{node}/{cam}_open", {
                        "name": f"{cam} open gate", "unique_id": f"{node}_{cam}_open",
                        "command_topic": f"{base}/gate/set", "payload_press": self._cfg.command_payload}))
            for path, conf in configs:
                client.publish(f"{dp}/{path}/config", json.dumps({**conf, **common}), qos=1, retain=True)

    # ------------------------------------------------------------ status

    @property
    def connected(self) -> bool:
        return self._connected

    def stats(self) -> dict[str, Any]:
        try:
            queued = self._outbox.depth() if not self._closed else 0
        except OutboxError:
            queued = -1
        return {"connected": self._connected, "outbox": queued, "outbox_dropped": self._outbox.dropped,
                **self._counts, "last_error": self._last_error}
