"""MQTT under attack and under faults, against a real mosquitto: the open command needs TLS and a
user, keeps its payload out of discovery and cannot be flooded; a failing callback or outbox read
does not end MQTT and makes the sink not alive while it lasts; paho holds a bounded window of
events while the broker is away, whatever the number of events."""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import MqttConfig, StorageConfig
from agent.errors import ConfigError
from agent.outbox import Outbox, OutboxError
from agent.sinks.mqtt import MqttSink
from agent.types import Box, Decision, Detection, PlateCrop, PlateRead
from tests.faults.conftest import agent_config, http_get, wait_until
from tests.faults.test_security import make_ca_and_server_cert
from tests.fixtures_mqtt import Broker, Subscriber, require_tools
from tests.sinks.test_mqtt import decision

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CAMERA = [{"id": "gate", "source": "/dev/null", "type": "file"}]
SECRET = "open-sesame-7f3a9c"


def config_errors(tmp_path: Path, **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        agent_config(tmp_path, cameras=CAMERA, **sections)
    return info.value.errors


def test_open_command_needs_tls_and_a_user_keeps_its_secret_and_cannot_be_flooded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, start_agent) -> None:
    # refused at load: no TLS, no username, commands closer than the floor; an explicit opt-out loads
    for mqtt, key in (({"username": "agent"}, "mqtt.command_topic: needs tls"),
                      ({"tls": True}, "mqtt.command_topic: needs a username"),
                      ({"tls": True, "username": "agent", "command_min_interval_s": 0.5},
                       "mqtt.command_min_interval_s")):
        errors = config_errors(tmp_path, mqtt={"enabled": True, "command_topic": True, **mqtt})
        assert any(e.startswith(key) for e in errors), errors
    agent_config(tmp_path, cameras=CAMERA, mqtt={"command_topic": True, "insecure_command": True})

    require_tools("mosquitto", "openssl", "mosquitto_passwd")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_ca_and_server_cert(certs)
    passwd = tmp_path / "passwd"
    for user, pw in (("agent", "agent-pw-1"), ("operator", "operator-pw-2")):
        subprocess.run(["mosquitto_passwd", *(["-c"] if user == "agent" else []), "-b", str(passwd), user, pw],
                       check=True, capture_output=True)
    broker = Broker(tmp_path, f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\npassword_file {passwd}")
    broker.start()
    monkeypatch.setenv("MQTT_PASSWORD", "agent-pw-1")
    caplog.set_level(logging.INFO)
    factory = MockFactory()
    operator = None
    try:
        agent = start_agent(agent_config(
            tmp_path / "agent", cameras=CAMERA,
            mqtt={"enabled": True, "port": broker.port, "tls": True, "ca_file": str(ca), "username": "agent",
                  "prefix": "sec3", "client_id": "gate-agent", "command_topic": True, "command_payload": SECRET,
                  "ha_discovery": True, "command_min_interval_s": 30.0},
            relay={"type": "gpio", "pin": "17", "pulse_s": 0.1, "cooldown_s": 0.0}),  # the relay alone: no limit
            relay_kw={"pin_factory": factory})
        wait_until(lambda: agent.doc()["mqtt"]["connected"], what="connected over TLS as agent")
        operator = Subscriber(broker.port, ["homeassistant/#"], ca_file=str(ca), username="operator",
                              password="operator-pw-2")
        # retained discovery: what every reader of the broker sees, now and later
        retained = operator.collect(lambda got: {m.topic.split("/")[1] for m in got} >= {"sensor", "binary_sensor"})
        time.sleep(0.5)  # a button config, had one been retained, arrives with the others
        retained += operator.drain(time.monotonic() + 0.1)
        assert not any(SECRET.encode() in m.payload for m in retained), [(m.topic, m.payload) for m in retained]
        assert not any("/button/" in m.topic and m.payload for m in retained)

        # 200 junk messages, then 5 right ones 0.3 s apart (each after the 0.1 s pulse): the gate opens once
        for i in range(200):
            operator.client.publish("sec3/gate/gate/set", f"junk-{i}", qos=1)
        for _ in range(5):
            operator.client.publish("sec3/gate/gate/set", SECRET, qos=1).wait_for_publish(10)
            time.sleep(0.3)
        doc = wait_until(lambda: (d := agent.doc()["mqtt"])["commands"] + d["commands_rejected"] >= 205 and d,
                         what="every command handled")
        assert (doc["commands"], doc["commands_rejected"]) == (1, 204), doc
        assert doc["commands_rejected_by"] == {"payload": 200, "too_soon": 4}
        assert agent.doc()["relay"]["pulses"] == 1
        assert [s.state for s in factory.pin(17).states].count(True) == 1
        lines = [r.getMessage() for r in caplog.records if "gate command rejected" in r.getMessage()]
        assert 1 <= len(lines) <= 3, lines  # one line per 10 s, each with the count it left out
        assert "plate_agent_mqtt_commands_rejected_total 204" in agent.metrics()
    finally:
        if operator is not None:
            operator.close()
        broker.stop()


def test_a_failing_callback_or_outbox_read_does_not_end_mqtt(tmp_path: Path, mqtt_broker: Broker, clips,
                                                             monkeypatch: pytest.MonkeyPatch, start_agent) -> None:
    for prefix in ("home//assistant", "/homeassistant", "ha/#"):  # every level named, no wildcard
        errors = config_errors(tmp_path, mqtt={"discovery_prefix": prefix})
        assert any(e.startswith("mqtt.discovery_prefix") for e in errors), errors
    sub = Subscriber(mqtt_broker.port, "cb/+/event", client_id="cb-fault-sub")
    try:
        clip = [{"id": "gate", "source": str(clips(("AB12 CDE",))), "type": "file"}]  # plays, then "ended": ok
        agent = start_agent(agent_config(tmp_path, cameras=clip, mqtt={
            "enabled": True, "port": mqtt_broker.port, "prefix": "cb", "reconnect_min_s": 0.5,
            "reconnect_max_s": 1.0, "ha_discovery": True}))
        sink = agent.service.parts.outputs.mqtt
        assert isinstance(sink, MqttSink)
        wait_until(lambda: agent.doc()["mqtt"]["connected"] and agent.status()[0] == 200, what="connected, ok")
        wait_until(lambda: (d := agent.doc())["cameras"]["gate"]["ended"] and d["mqtt"]["outbox"] == 0,
                   what="the clip played and its events delivered")

        def arrived(event_id: str) -> None:
            sub.collect(lambda got: event_id in [json.loads(m.payload)["event_id"] for m in got], timeout=20)

        # 1: one PUBACK whose bookkeeping raises, in paho's network thread (on_publish)
        real_delete, calls = Outbox.delete, []

        def delete_fails_once(self: Outbox, item_id: int) -> None:
            calls.append(item_id)
            if len(calls) == 1:
                raise RuntimeError("database disk image is malformed")
            real_delete(self, item_id)

        monkeypatch.setattr(Outbox, "delete", delete_fails_once)
        sink.send(decision("first"))
        wait_until(lambda: agent.doc()["mqtt"]["callback_errors"] >= 1, what="the failure counted")
        sink.send(decision("second"))
        arrived("second")  # MQTT goes on: paho's thread still reads the PUBACKs
        wait_until(lambda: agent.doc()["mqtt"]["outbox"] == 1, what="the second acknowledged (the first stays)")
        assert "on_publish failed" in agent.doc()["mqtt"]["last_error"]

        # 2: the outbox cannot be read, at every connect and every retry: not alive, /status 503, no pings
        def unreadable(self: Outbox, *args: Any, **kwargs: Any) -> Any:
            raise OutboxError("outbox: disk I/O error")

        real_pending = Outbox.pending
        monkeypatch.setattr(Outbox, "pending", unreadable)
        mqtt_broker.stop()
        mqtt_broker.start()
        wait_until(lambda: agent.doc()["mqtt"]["alive"] is False, what="the sink not alive")
        code, body = http_get(agent.port)
        assert code == 503 and json.loads(body)["mqtt"]["failing"] == ["feed"]
        assert "mqtt" in agent.service.watchdog.stalled()

        # 3: the fault clears: alive again, and the events wait for nothing
        monkeypatch.setattr(Outbox, "pending", real_pending)
        sink.send(decision("third"))
        arrived("third")
        wait_until(lambda: agent.doc()["mqtt"]["alive"], what="alive again")
        assert "mqtt" not in agent.service.watchdog.stalled() and agent.status()[0] == 200
    finally:
        sub.close()


def crop_decision(event_id: str, jpeg: bytes) -> Decision:
    crop = PlateCrop("gate", 7, 1.7e9, 5.0, Detection(Box(1, 2, 3, 4), 0.9), Box(0, 0, 8, 8), jpeg, 1.0, 1.0)
    read = PlateRead("gate", "AB123CD", 0.91, 0.88, Box(10, 20, 110, 50), 1.7e9, 5.0, crop=crop)
    return Decision(event_id, event_id, "new", "gate", "AB123CD", read, "open", "allow", "", False, 1.7e9)


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


EVENTS = 1000
CROP_BYTES = 64_000  # a large plate crop: 64 MB of crops in all


def test_memory_stays_bounded_while_the_broker_is_away(tmp_path: Path, mqtt_broker: Broker) -> None:
    sub = Subscriber(mqtt_broker.port, "mem/+/event", client_id="mem-fault-sub")
    sink = MqttSink(MqttConfig(enabled=True, port=mqtt_broker.port, prefix="mem", client_id="mem-agent",
                               publish_crop="topic", reconnect_min_s=0.5, reconnect_max_s=1.0),
                    StorageConfig(outbox_max_items=200), tmp_path, cameras=["gate"])
    sink.start()
    try:
        wait_until(lambda: sink.connected, what="connected")
        mqtt_broker.stop()
        wait_until(lambda: not sink.stats()["connected"], what="the broker gone")
        gc.collect()
        tracemalloc.start()
        rss_before = rss_mb()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(EVENTS):
                # each crop its own bytes, as from the camera: whoever keeps one pays for it
                sink.send(crop_decision(f"ev-{i}", bytes([i % 256]) * CROP_BYTES))
            wait_until(lambda: sink.stats()["memory_queue"] >= 100, what="the window full")
            time.sleep(0.5)  # the mqtt thread has nothing more it may hand over
            gc.collect()
            held_mb = (tracemalloc.get_traced_memory()[0] - base) / 1e6
            peak_mb = (tracemalloc.get_traced_memory()[1] - base) / 1e6
        finally:
            tracemalloc.stop()
        rss_growth = rss_mb() - rss_before
        stats = sink.stats()
        print(f"\n{EVENTS} events with {CROP_BYTES} B crops, broker away: python heap +{held_mb:.1f} MB "
              f"(peak +{peak_mb:.1f} MB), RSS +{rss_growth:.1f} MB, paho holds {stats['memory_queue']} messages "
              f"({stats['memory_queue_bytes'] / 1e6:.1f} MB), outbox {stats['outbox']}")
        assert stats["memory_queue"] <= 100 and stats["memory_queue_bytes"] <= 8_000_000
        assert stats["outbox"] == 200  # the durable store: bounded by storage.outbox_max_items
        assert held_mb < 20, f"{held_mb:.1f} MB held for {EVENTS * CROP_BYTES / 1e6:.0f} MB of crops"

        mqtt_broker.start()  # everything still stored goes out, the newest event last
        wait_until(lambda: sink.stats()["outbox"] == 0 and sink.stats()["memory_queue"] == 0, timeout_s=60,
                   what="the outbox and the window empty")
        sub.collect(lambda got: f"ev-{EVENTS - 1}" in [json.loads(m.payload)["event_id"] for m in got], timeout=20)
    finally:
        sink.close()
        sub.close()
