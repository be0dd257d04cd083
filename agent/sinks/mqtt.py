"""MQTT sink (paho-mqtt 2.x): QoS 1 events via a durable outbox, availability with a last will,
retained gate state, an optional open command topic and Home Assistant discovery.

Topics: ``<prefix>/status`` (online/offline, retained), ``<prefix>/<camera>/event`` (JSON),
``<prefix>/<camera>/crop`` (JPEG, optional), ``<prefix>/<camera>/gate`` (ON/OFF, retained),
``<prefix>/<camera>/gate/set`` (command, off by default). An event leaves the outbox only on PUBACK.

Memory stays bounded while the broker is away: paho holds at most ``queue_max_items`` /
``queue_max_mb`` of events (its own queue is capped too); the rest wait in the outbox on disk and
are handed over as PUBACKs make room. The ``mqtt`` thread owns that hand-over and the set-up after
each connect; paho's callbacks only book-keep, and each is guarded so one failure cannot end MQTT.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..backoff import backoff_s
from ..config import MqttConfig, StorageConfig
from ..environ import secret
from ..errors import SinkError
from ..events import decision_payload
from ..lograte import RateLimitedLog
from ..outbox import Outbox, OutboxError
from ..timebase import system_synchronised
from ..types import Decision
from . import crop_jpeg
from .mqtt_command import GateCommands, discovery

logger = logging.getLogger(__name__)

EARLY_ACK_KEEP_S = 30.0  # PUBACKs that beat the bookkeeping are remembered this long
CLOSE_FLUSH_S = 1.0  # on close, wait this long for "offline" to reach the broker
WAKE_S = 1.0  # the mqtt thread looks for work at least this often
MAX_FAILURES = 3  # a callback or the set-up failing this many times in a row: the sink is not alive
CONTROL_HEADROOM = 16  # paho queue places kept for status, gate state and discovery messages
ERROR_LOG_EVERY_S = 10.0


class MqttSink:
    """Built by the wiring; ``start`` connects in the background (paho's loop and the ``mqtt`` thread)."""

    def __init__(
        self,
        cfg: MqttConfig,
        storage: StorageConfig,
        state_dir: Path,
        *,
        cameras: Sequence[str] = (),
        gate_cameras: Sequence[str] = (),
        open_gate: Callable[[str], bool] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        clock_synchronised: Callable[[], bool] = system_synchronised,  # the outbox's ages across a reboot
    ) -> None:
        self._cfg = cfg
        self._cameras = list(cameras)
        self._gate_cameras = list(gate_cameras)
        self._commands = (GateCommands(cfg.command_payload, gate_cameras, open_gate,
                                       min_interval_s=cfg.command_min_interval_s, clock=clock)
                          if cfg.command_topic and open_gate is not None else None)
        self._environ = environ
        self._clock = clock
        self._outbox = Outbox(Path(state_dir) / "mqtt-outbox.sqlite3", storage, synchronised=clock_synchronised)
        self.client_id = cfg.client_id or f"plate-agent-{socket.gethostname()}"
        p = cfg.prefix.rstrip("/")
        self.status_topic = f"{p}/status"
        self._prefix = p
        self._client: Any = None
        self._lock = threading.Lock()  # the window, mids and counters; never held while calling paho
        self._gate_lock = threading.Lock()  # gate state: the latest one is the last one published
        self._mids: dict[int, int] = {}  # paho mid -> window key, until PUBACK
        self._early: dict[int, float] = {}  # mids acked before they were booked
        self._window: dict[int, int] = {}  # key (outbox row id, < 0: not stored) -> bytes, held by paho
        self._window_bytes = 0
        self._unstored = itertools.count(-1, -1)
        self._cursor = 0  # outbox rows up to this id were handed to paho (or are gone)
        self._backlog = True  # the outbox may hold rows paho has not got
        self._gate_on: bool | None = None
        self._link = False  # paho is connected
        self._connect_gen = 0  # counts successful connects (paho thread)
        self._setup_gen = 0  # the connect the set-up was done for (mqtt thread)
        self._failing: dict[str, int] = {}  # callback or step -> failures in a row
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._counts = dict.fromkeys(
            ("events", "acked", "rejected", "publish_errors", "connects", "connect_failures",
             "disconnects", "callback_errors", "dropped_unstored"), 0)
        self._last_error = ""
        self._error_log = RateLimitedLog(logger, ERROR_LOG_EVERY_S, clock)
        self._error_logs: dict[str, RateLimitedLog] = {}  # one per failing callback or step
        self._started = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the outbox and connect in the background; what an earlier run left is sent first."""
        import paho.mqtt.client as mqtt

        try:
            self._outbox.open()
        except OutboxError as err:
            raise SinkError(f"mqtt: {err}") from err
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        c.on_connect = self._guard("on_connect", self._on_connect)
        c.on_disconnect = self._guard("on_disconnect", self._on_disconnect)
        c.on_publish = self._guard("on_publish", self._on_publish)
        c.on_message = self._guard("on_message", self._on_message)
        c.will_set(self.status_topic, "offline", qos=1, retain=True)
        c.reconnect_delay_set(max(1, round(self._cfg.reconnect_min_s)), max(1, round(self._cfg.reconnect_max_s)))
        # a hard cap behind the window: paho refuses (and the outbox keeps) what would pass it
        c.max_queued_messages_set(self._cfg.queue_max_items + CONTROL_HEADROOM + 4 * len(self._cameras))
        if self._cfg.username:
            c.username_pw_set(self._cfg.username, secret("MQTT_PASSWORD", self._environ))
        if self._cfg.tls:
            try:
                c.tls_set(ca_certs=self._cfg.ca_file or None)
            except (OSError, ValueError) as err:
                raise SinkError(f"mqtt: TLS set-up failed (ca_file={self._cfg.ca_file!r}): {err}") from err
        if self._commands is not None and self._cfg.insecure_command:
            logger.warning("mqtt gate command accepted with insecure_command = true: anyone who can publish "
                           "to %s/+/gate/set on %s can open the gate", self._prefix, self._cfg.host)
        self._client = c
        depth = self._outbox.depth()
        if depth:
            logger.info("mqtt outbox replay items=%d", depth)
        try:
            c.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        except (OSError, ValueError) as err:
            raise SinkError(f"mqtt: cannot connect to {self._cfg.host}:{self._cfg.port}: {err}") from err
        self._feed()  # the first window of the replay, in order, before anything new
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()
        c.loop_start()
        self._started = True

    def close(self) -> None:
        """Publish ``offline`` (a clean disconnect sends no will), disconnect, stop; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2.0)
        c = self._client
        if c is not None:
            if self.connected:
                try:
                    c.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(CLOSE_FLUSH_S)
                except (RuntimeError, ValueError):
                    pass
            c.disconnect()
            c.loop_stop()
        self._outbox.close()

    # ------------------------------------------------------------ sink

    def send(self, decision: Decision) -> None:
        """Store in the outbox and wake the ``mqtt`` thread, which hands it to paho; the PUBACK deletes it."""
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
                self._outbox.put(topic, payload, {"qos": self._cfg.qos, "event_id": decision.event_id})
            except OutboxError as err:  # disk trouble: still try to deliver, not durably, if there is room
                self._counts["publish_errors"] += 1
                self._error_log(logging.ERROR, "mqtt outbox write failed, publishing without it: %s", err)
                if self._client is None or not self._hand(next(self._unstored), topic, payload, self._cfg.qos):
                    self._counts["dropped_unstored"] += 1
        self._backlog = True
        self._wake.set()

    def _run(self) -> None:
        """The ``mqtt`` thread: set-up after each connect, then hand paho what the window has room for."""
        attempt = 0
        while not self._stop.is_set():
            self._wake.wait(WAKE_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            step = "setup"
            try:
                gen = self._connect_gen
                if self._link and self._setup_gen != gen:
                    self._setup(gen)
                    self._succeeded(step)
                step = "feed"
                self._feed()
                self._succeeded(step)
                attempt = 0
            except Exception as err:  # one catch-all: count, back off, try again
                self._backlog = True
                self._failed(step, err)
                self._stop.wait(backoff_s(attempt, self._cfg.reconnect_min_s, self._cfg.reconnect_max_s))
                attempt += 1
                self._wake.set()

    def _setup(self, gen: int) -> None:
        """After a connect: online, the command subscription, discovery, the gate state."""
        import paho.mqtt.client as mqtt

        c = self._client
        c.publish(self.status_topic, "online", qos=1, retain=True)
        if self._commands is not None:
            rc, _ = c.subscribe(f"{self._prefix}/+/gate/set", qos=1)
            if rc == mqtt.MQTT_ERR_NO_CONN:
                return  # gone again: the next connect sets up
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise SinkError(f"mqtt: subscribe failed rc={rc}")
        if self._cfg.ha_discovery:
            for topic, payload in discovery(self.client_id, self._prefix, self._cfg.discovery_prefix,
                                            self._cameras, self._gate_cameras,
                                            crop_topic=self._cfg.publish_crop == "topic"):
                c.publish(topic, payload, qos=1, retain=True)
        with self._gate_lock:
            if self._gate_on is not None:
                self._publish_gate(self._gate_on)
        self._setup_gen = gen
        self._cursor = 0  # look again at every row: paho refused some while the broker was away (qos 0)
        self._backlog = True

    def _feed(self) -> None:
        """Hand paho the oldest outbox rows it does not hold, while the window has room."""
        while self._backlog and not self._closed:
            self._backlog = False  # set again by send/ack/connect: then this runs once more
            with self._lock:
                room = self._cfg.queue_max_items - len(self._window)
            if room <= 0:
                self._backlog = True  # an ack makes room and wakes this thread
                return
            items = self._outbox.pending(limit=room, after_id=self._cursor)
            for item in items:
                qos = int(item.meta.get("qos", self._cfg.qos))
                if not self._hand(item.id, item.key, item.body, qos):
                    self._backlog = True  # no room (bytes) or paho refused: retried on an ack or a connect
                    return
                self._cursor = item.id
            if len(items) == room:
                self._backlog = True

    def _hand(self, key: int, topic: str, payload: bytes, qos: int) -> bool:
        """Give one message to paho if the window has room; False when it stays in the outbox."""
        import paho.mqtt.client as mqtt

        size = len(payload)
        with self._lock:
            if key in self._window:
                return True
            if self._window and (len(self._window) >= self._cfg.queue_max_items
                                 or self._window_bytes + size > self._cfg.queue_max_mb * 1_000_000):
                return False
            self._window[key] = size  # reserved before the call: an ack may arrive before it returns
            self._window_bytes += size
        # never hold self._lock while calling paho: its network thread calls on_publish under its own lock
        info = self._client.publish(topic, payload, qos=qos)
        queued = info.rc == mqtt.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN)
        with self._lock:
            if not queued:
                self._release(key)
                if info.rc != mqtt.MQTT_ERR_NO_CONN:  # qos 0 while away is expected: retried at the connect
                    self._counts["publish_errors"] += 1
                logger.debug("mqtt publish not queued topic=%s rc=%s (kept in the outbox)", topic, info.rc)
                return False
            if info.mid in self._early or (info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published()):
                self._early.pop(info.mid, None)
                self._acked(key)
            else:
                self._mids[info.mid] = key
        return True

    def _release(self, key: int) -> None:
        self._window_bytes -= self._window.pop(key, 0)

    def _acked(self, key: int) -> None:
        """Under self._lock."""
        self._counts["acked"] += 1
        self._release(key)
        if key > 0:
            try:
                self._outbox.delete(key)
            except OutboxError as err:
                self._error_log(logging.ERROR, "mqtt outbox delete failed row=%d: %s", key, err)

    def publish_gate_state(self, on: bool) -> None:
        """Relay state listener: retained ON/OFF on each gate camera's ``gate`` topic. Only the
        latest state matters, so nothing is queued while disconnected: the set-up sends it."""
        with self._gate_lock:
            self._gate_on = on
            if self._client is not None and self._link:
                self._publish_gate(on)

    def _publish_gate(self, on: bool) -> None:
        for cam in self._gate_cameras:
            self._client.publish(f"{self._prefix}/{cam}/gate", "ON" if on else "OFF", qos=1, retain=True)

    def publish_summary(self, payload: bytes) -> bool:
        """The status document, retained on ``<prefix>/status/summary``; skipped while disconnected
        (paho would queue every missed one)."""
        c = self._client
        if c is None or not self.connected:
            return False
        return bool(c.publish(f"{self._prefix}/status/summary", payload, qos=1, retain=True).rc == 0)

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _guard(self, name: str, fn: Callable[..., None]) -> Callable[..., None]:
        """An exception escaping a callback would end paho's loop thread, and MQTT with it."""

        def guarded(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as err:
                self._failed(name, err)
            else:
                self._succeeded(name)

        return guarded

    def _failed(self, name: str, err: Exception) -> None:
        """Called in an ``except`` block: counted, and logged with its traceback (rate-limited)."""
        with self._lock:
            self._counts["callback_errors"] += 1
            self._failing[name] = self._failing.get(name, 0) + 1
            self._last_error = f"{name} failed: {type(err).__name__}: {err}"[:300]
            log = self._error_logs.setdefault(name, RateLimitedLog(logger, ERROR_LOG_EVERY_S, self._clock))
        log(logging.ERROR, "mqtt %s failed", name, exc_info=True)

    def _succeeded(self, name: str) -> None:
        if self._failing.get(name):
            with self._lock:
                self._failing[name] = 0

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._link = False
            self._counts["connect_failures"] += 1
            self._last_error = f"connect refused: {reason_code}"
            logger.error("mqtt connect refused host=%s reason=%s", self._cfg.host, reason_code)
            return
        self._connect_gen += 1
        self._link = True
        self._counts["connects"] += 1
        logger.info("mqtt connected host=%s port=%d", self._cfg.host, self._cfg.port)
        self._wake.set()  # the mqtt thread sets up: online, subscription, discovery, gate state

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._link:
            self._counts["disconnects"] += 1
            if getattr(reason_code, "is_failure", True):  # not our own disconnect() at close
                self._last_error = f"disconnected: {reason_code}"
            logger.warning("mqtt disconnected reason=%s (reconnecting)", reason_code)
        self._link = False

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._lock:
            key = self._mids.pop(mid, None)
            if key is None:
                now = time.monotonic()
                self._early = {m: t for m, t in self._early.items() if now - t < EARLY_ACK_KEEP_S}
                self._early[mid] = now
                return
            if reason_code is not None and reason_code.is_failure:  # MQTT 5 only; resending will not help
                self._counts["rejected"] += 1
                logger.error("mqtt broker rejected a message reason=%s", reason_code)
            self._acked(key)
        if self._backlog:
            self._wake.set()  # room in the window for the next outbox rows

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if self._commands is None:
            return
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # paho decodes on access; a junk topic is a refused command, not a failure
            topic = ""
        self._commands.handle(topic, bytes(msg.payload), bool(msg.retain))

    # ------------------------------------------------------------ status

    @property
    def connected(self) -> bool:
        """Connected and set up (online published, subscribed) for this connection."""
        return self._link and self._setup_gen == self._connect_gen

    @property
    def alive(self) -> bool:
        """Both threads run and no callback or step has failed MAX_FAILURES times in a row. A broker
        that is away does not make the sink dead: it reconnects by itself."""
        if not self._started or self._closed:
            return True
        if any(n >= MAX_FAILURES for n in self._failing.values()):
            return False
        paho_thread = getattr(self._client, "_thread", None)  # paho sets it to None when its loop ends
        return self._thread is not None and self._thread.is_alive() and paho_thread is not None

    def stats(self) -> dict[str, Any]:
        try:
            queued = self._outbox.depth() if not self._closed else 0
        except OutboxError:
            queued = -1
        with self._lock:
            memory = {"memory_queue": len(self._window), "memory_queue_bytes": self._window_bytes}
            failing = sorted(k for k, n in self._failing.items() if n)
        commands = self._commands.stats() if self._commands is not None else {}
        where = self._outbox.storage()
        return {"connected": self.connected, "alive": self.alive, "outbox": queued,
                "outbox_dropped": self._outbox.dropped, "outbox_storage": where["storage"],
                "outbox_storage_error": where["storage_error"], "outbox_moved_aside": where["moved_aside"],
                **memory, **self._counts, "failing": failing,
                "commands": 0, "commands_rejected": 0, **commands, "last_error": self._last_error}
