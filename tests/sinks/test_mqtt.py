"""MQTT sink against a real mosquitto: payload and QoS, availability and last will, gate state,
command topic, discovery, and no lost events across broker restarts and agent restarts."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import MqttConfig, StorageConfig
from agent.sinks.mqtt import MqttSink
from agent.types import Box, Decision, Detection, PlateCrop, PlateRead
from tests.fixtures_mqtt import Broker, Subscriber

ROOT = Path(__file__).resolve().parents[2]
JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


def decision(event_id: str = "e1", camera: str = "gate", with_crop: bool = False) -> Decision:
    crop = None
    if with_crop:
        crop = PlateCrop(camera, 7, 1.7e9, 5.0, Detection(Box(1, 2, 3, 4), 0.9), Box(0, 0, 8, 8), JPEG, 1.0, 1.0)
    read = PlateRead(camera, "AB123CD", 0.91, 0.88, Box(10, 20, 110, 50), 1.7e9, 5.0, region="gb", crop=crop)
    return Decision(event_id, "pass1", "new", camera, "AB123CD", read, "open", "allow:AB123CD", "exact match",
                    False, 1.7e9 + 0.2)


def wait_until(pred: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def make_sink(broker: Broker, state_dir: Path, **kw) -> MqttSink:
    opts = {"enabled": True, "port": broker.port, "prefix": "pa", "client_id": "agent-test", "keepalive_s": 5,
            "reconnect_min_s": 1, "reconnect_max_s": 1}
    extra = {k: kw.pop(k) for k in ("cameras", "gate_cameras", "open_gate", "environ") if k in kw}
    return MqttSink(MqttConfig(**{**opts, **kw}), StorageConfig(), state_dir, **{"cameras": ["gate"], **extra})


@pytest.fixture
def sub(mqtt_broker: Broker):
    s = Subscriber(mqtt_broker.port, ["pa/#", "homeassistant/#"])
    yield s
    s.close()


def test_event_payload_qos_crop_and_availability(mqtt_broker: Broker, sub: Subscriber, tmp_path: Path):
    sink = make_sink(mqtt_broker, tmp_path, publish_crop="topic")
    sink.start()
    m = sub.get()
    assert (m.topic, m.payload, m.retain) == ("pa/status", b"online", False)  # live delivery
    sink.send(decision(with_crop=True))
    ev, crop = sub.get(), sub.get()
    assert ev.topic == "pa/gate/event" and ev.qos == 1
    body = json.loads(ev.payload)
    assert body["event_id"] == "e1" and body["pass_id"] == "pass1" and body["plate"] == "AB123CD"
    assert body["action"] == "open" and body["rule"] == "allow:AB123CD" and body["type"] == "new"
    assert body["read"]["score"] == 0.91 and body["read"]["box"]["xmin"] == 10
    assert body["decided_at"].endswith("Z") and body["read"]["captured_at"].endswith("Z")
    assert (crop.topic, crop.payload, crop.qos) == ("pa/gate/crop", JPEG, 1)
    wait_until(lambda: sink.stats()["outbox"] == 0)
    assert sink.stats()["acked"] >= 2 and sink.stats()["connected"]
    sink.close()
    assert sub.get().payload == b"offline"
    late = Subscriber(mqtt_broker.port, "pa/status")  # retained for whoever comes later
    assert late.get().payload == b"offline"
    late.close()


def test_crop_as_base64(mqtt_broker: Broker, sub: Subscriber, tmp_path: Path):
    sink = make_sink(mqtt_broker, tmp_path, publish_crop="base64")
    sink.start()
    sub.get()
    sink.send(decision(with_crop=True))
    body = json.loads(sub.get().payload)
    assert base64.b64decode(body["crop_jpeg_base64"]) == JPEG
    sink.close()


def test_gate_state_retained_and_command_topic(mqtt_broker: Broker, sub: Subscriber, tmp_path: Path):
    opened: list[str] = []

    def open_gate(camera: str) -> bool:
        opened.append(camera)
        return True

    # a retained command left on the broker must not open the gate when the agent (re)subscribes
    sub.client.publish("pa/gate/gate/set", "OPEN", qos=1, retain=True).wait_for_publish(5)
    sub.get()
    sink = make_sink(mqtt_broker, tmp_path, command_topic=True, gate_cameras=["gate"], open_gate=open_gate)
    sink.start()
    wait_until(lambda: sink.connected)
    sink.publish_gate_state(True)
    sink.publish_gate_state(False)
    got = sub.collect(lambda got: [m.payload for m in got if m.topic == "pa/gate/gate"][-2:] == [b"ON", b"OFF"])
    msgs = [m for m in got if m.topic != "pa/gate/gate/set"]
    assert [(m.topic, m.payload) for m in msgs[1:]] == [("pa/gate/gate", b"ON"), ("pa/gate/gate", b"OFF")]
    sub.client.publish("pa/gate/gate/set", "nope", qos=1)
    sub.client.publish("pa/other/gate/set", "OPEN", qos=1)
    sub.client.publish("pa/gate/gate/set", "OPEN", qos=1)
    wait_until(lambda: sink.stats()["commands"] == 1)
    assert opened == ["gate"] and sink.stats()["commands_rejected"] == 3
    assert sink.stats()["commands_rejected_by"] == {"retained": 1, "payload": 1, "camera": 1}
    sub.client.publish("pa/gate/gate/set", b"", qos=1, retain=True)  # clear the retained command
    late = Subscriber(mqtt_broker.port, "pa/gate/gate")
    assert late.get().payload == b"OFF"
    late.close()
    sink.close()


def test_home_assistant_discovery(mqtt_broker: Broker, sub: Subscriber, tmp_path: Path):
    sink = make_sink(mqtt_broker, tmp_path, ha_discovery=True, command_topic=True, gate_cameras=["gate"],
                     open_gate=lambda cam: True)
    sink.start()
    configs = {"homeassistant/sensor/agent-test/gate_plate/config",
               "homeassistant/binary_sensor/agent-test/gate_gate/config",
               "homeassistant/button/agent-test/gate_open/config"}
    got = {m.topic: m for m in sub.collect(lambda got: {m.topic for m in got} >= configs)}
    sensor = json.loads(got["homeassistant/sensor/agent-test/gate_plate/config"].payload)
    assert sensor["state_topic"] == "pa/gate/event" and sensor["availability_topic"] == "pa/status"
    gate = json.loads(got["homeassistant/binary_sensor/agent-test/gate_gate/config"].payload)
    assert gate["state_topic"] == "pa/gate/gate" and gate["payload_on"] == "ON"
    # the open button is not announced (its payload is the command's secret): an old one is removed
    assert got["homeassistant/button/agent-test/gate_open/config"].payload == b""
    sink.close()


def child(port: int, state_dir: Path, n: int) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-m", "tests.sinks.mqtt_child", str(port), str(state_dir), str(n)],
                         cwd=ROOT, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    return p


def kill(p: subprocess.Popen[bytes]) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait(5)


def test_killed_agent_goes_offline_via_last_will(mqtt_broker: Broker, tmp_path: Path):
    status = Subscriber(mqtt_broker.port, "pa/status")
    p = child(mqtt_broker.port, tmp_path, 0)
    try:
        assert status.get().payload == b"online"
        kill(p)
        m = status.get(timeout=5)
        assert m.payload == b"offline"
    finally:
        if p.poll() is None:
            p.kill()
        status.close()


def test_broker_restart_mid_run_loses_nothing(mqtt_broker: Broker, tmp_path: Path):
    sub = Subscriber(mqtt_broker.port, "pa/+/event", client_id="persistent-sub")
    sink = make_sink(mqtt_broker, tmp_path)
    sink.start()
    wait_until(lambda: sink.connected)
    for i in range(5):
        sink.send(decision(f"before-{i}"))
    wait_until(lambda: sink.stats()["outbox"] == 0)
    mqtt_broker.stop()
    wait_until(lambda: not sink.connected)
    for i in range(5):
        sink.send(decision(f"during-{i}"))
    assert sink.stats()["outbox"] == 5  # kept until a PUBACK
    mqtt_broker.start()
    wait_until(lambda: sink.stats()["outbox"] == 0, timeout=15)
    want = {f"before-{i}" for i in range(5)} | {f"during-{i}" for i in range(5)}
    ids = {json.loads(m.payload)["event_id"] for m in sub.collect(
        lambda got: {json.loads(m.payload)["event_id"] for m in got} >= want)}
    assert ids == want
    sink.close()
    sub.close()


def test_agent_restart_while_broker_down_loses_nothing(mqtt_broker: Broker, tmp_path: Path):
    mqtt_broker.stop()
    p = child(mqtt_broker.port, tmp_path, 4)  # queues 4 events while the broker is down ...
    kill(p)  # ... and dies before it could deliver them
    mqtt_broker.start()
    sub = Subscriber(mqtt_broker.port, "pa/+/event")
    sink = make_sink(mqtt_broker, tmp_path)  # the restarted agent, same state dir
    sink.start()
    got = [json.loads(sub.get(timeout=8).payload)["event_id"] for _ in range(4)]
    assert got == [f"child-{i}" for i in range(4)]  # all of them, in order
    wait_until(lambda: sink.stats()["outbox"] == 0)
    sink.close()
    sub.close()


def test_refused_connection_is_not_connected(tmp_path: Path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "agent", "s3cret"], check=True, capture_output=True)
    broker = Broker(tmp_path, f"password_file {pw}")
    broker.start()
    try:
        bad = make_sink(broker, tmp_path / "a", username="agent", environ={"MQTT_PASSWORD": "wrong"})
        bad.start()
        wait_until(lambda: bad.stats()["connect_failures"] >= 1)
        assert not bad.connected and "refused" in bad.stats()["last_error"]
        bad.close()
        good = make_sink(broker, tmp_path / "b", username="agent", environ={"MQTT_PASSWORD": "s3cret"})
        good.start()
        wait_until(lambda: good.connected)
        good.close()
    finally:
        broker.stop()


def test_a_burst_larger_than_the_memory_window_arrives_whole_and_in_order(mqtt_broker: Broker, tmp_path: Path):
    """paho gets at most queue_max_items at a time; each PUBACK makes room for the next outbox row."""
    sub = Subscriber(mqtt_broker.port, "pa/+/event")
    sink = make_sink(mqtt_broker, tmp_path, queue_max_items=5)
    sink.start()
    try:
        wait_until(lambda: sink.connected)
        most = 0
        for i in range(200):
            sink.send(decision(f"burst-{i}"))
            most = max(most, sink.stats()["memory_queue"])
        want = [f"burst-{i}" for i in range(200)]
        got = sub.collect(lambda got: len(got) >= 200, timeout=30)
        assert [json.loads(m.payload)["event_id"] for m in got] == want
        wait_until(lambda: sink.stats()["outbox"] == 0 and sink.stats()["memory_queue"] == 0)
        assert 1 <= most <= 5
    finally:
        sink.close()
        sub.close()


def test_window_bytes_bound_and_an_oversized_message_still_goes(mqtt_broker: Broker, tmp_path: Path):
    """queue_max_mb bounds what paho holds; one message larger than it alone is still handed over."""
    mqtt_broker.stop()
    sink = make_sink(mqtt_broker, tmp_path, queue_max_mb=0.05, publish_crop="base64")
    sink.start()
    try:
        for i in range(3):
            sink.send(decision(f"small-{i}"))
        wait_until(lambda: sink.stats()["memory_queue"] == 3)
        small = decision("big", with_crop=True)
        assert small.read.crop is not None
        crop = dataclasses.replace(small.read.crop, jpeg=b"\xff" * 120_000)
        sink.send(dataclasses.replace(small, read=dataclasses.replace(small.read, crop=crop)))
        time.sleep(0.3)  # the mqtt thread looked: no room by bytes, the big one waits in the outbox
        assert sink.stats()["memory_queue"] == 3 and sink.stats()["outbox"] == 4
        mqtt_broker.start()
        wait_until(lambda: sink.stats()["outbox"] == 0, timeout=20)
        assert sink.stats()["memory_queue"] == 0
    finally:
        sink.close()
