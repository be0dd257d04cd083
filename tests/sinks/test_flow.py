"""Decisions through every sink at once: reads -> Decider -> Dispatcher -> relay, MQTT, webhook."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from agent import config
from agent.decide import Decider
from agent.events import JsonLinesSink
from agent.pipeline import Dispatcher
from agent.read.worker import ReadWorker
from agent.rules import AccessRules
from agent.types import Box, Detection, PlateCrop, PlateRead
from agent.wiring import Closers, build_outputs
from tests.clock import Clock
from tests.fixtures_mqtt import Broker, Subscriber
from tests.sinks.test_mqtt import wait_until
from tests.sinks.test_webhook import Server


def read(plate: str, score: float = 0.9, mono: float | None = None) -> PlateRead:
    return PlateRead("gate", plate, score, 0.9, Box(10, 10, 110, 40), time.time(),
                     time.monotonic() if mono is None else mono)


def test_allowed_denied_and_look_alike_end_to_end(mqtt_broker: Broker, tmp_path: Path):
    hook = Server()
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": "clip.mp4"}],
        "rules": {"allow": [{"plate": "AB123CD"}], "deny": [{"plate": "XY999ZZ"}]},
        "decision": {"pass_window_s": 0.2},  # vehicles below come 0.25 s apart
        "relay": {"type": "gpio", "pin": "17", "pulse_s": 0.2, "cooldown_s": 0.0},
        "mqtt": {"enabled": True, "port": mqtt_broker.port, "prefix": "pa", "command_topic": True,
                 "insecure_command": True},
        "webhooks": [{"url": hook.url}],
    })
    factory = MockFactory()
    closers: Closers = []
    outputs = build_outputs(cfg, tmp_path, closers, relay_kw={"pin_factory": factory})
    gate, mqtt = outputs.relay, outputs.mqtt
    assert gate is not None and mqtt is not None
    ((name, webhook),) = [(w.name, w.sink) for w in outputs.webhooks]
    sinks = outputs.sinks()
    assert sinks == [gate, mqtt, webhook] and name == "webhook-1"  # the relay is served first
    assert [n for n, _ in closers] == ["relay", "mqtt", "webhook-1"]
    rules = AccessRules(cfg.rules)
    rules.load()
    clock = Clock()
    dispatch = Dispatcher(Decider(cfg.decision, rules, clock=clock), sinks)
    sub = Subscriber(mqtt_broker.port, ["pa/gate/event", "pa/gate/gate"])
    wait_until(lambda: mqtt.stats()["connected"])
    pin = factory.pin(17)

    dispatch.handle(read("AB123CD", mono=clock.t))
    assert pin.state == 1  # relay on before handle() even returns
    for _ in range(9):
        dispatch.handle(read("AB123CD", mono=clock.t))
    for plate in ("XY999ZZ", "AB124CD"):  # a denied car, then a look-alike one character off
        clock.set(clock.t + 0.25)
        for _ in range(5):
            dispatch.handle(read(plate, mono=clock.t))
    wait_until(lambda: webhook.stats()["sent"] == 3 and not gate.stats()["state"] == "on")

    def complete(got: list) -> bool:  # one publisher, one topic: in order, so the last event means all came
        gate_msgs = [m.payload for m in got if m.topic == "pa/gate/gate"]
        return (any(b"AB124CD" in m.payload for m in got if m.topic == "pa/gate/event")
                and b"ON" in gate_msgs and b"OFF" in gate_msgs[gate_msgs.index(b"ON") + 1:])

    msgs = sub.collect(complete)
    events = [json.loads(m.payload) for m in msgs if m.topic == "pa/gate/event"]
    assert [(e["plate"], e["action"]) for e in events] == [("AB123CD", "open"), ("XY999ZZ", "deny"),
                                                           ("AB124CD", "none")]
    assert len({e["pass_id"] for e in events}) == 3  # 0.25 s apart, pass_window_s 0.2: three passes
    gate_msgs = [m.payload for m in msgs if m.topic == "pa/gate/gate"]
    # the state re-published on connect may land next to the pulse's ON; what counts: the pulse
    # was published as ON, then OFF, and OFF is the last word
    assert b"ON" in gate_msgs and gate_msgs[-1] == b"OFF"
    assert b"OFF" in gate_msgs[gate_msgs.index(b"ON") + 1:]
    assert gate.stats()["pulses"] == 1 and [s.state for s in pin.states] == [False, True, False]
    assert [json.loads(b)["data"]["decision"]["action"] for _, b in hook.requests] == ["open", "deny", "none"]

    sub.client.publish("pa/gate/gate/set", "OPEN", qos=1)  # operator command -> one more pulse
    wait_until(lambda: gate.stats()["pulses"] == 2)
    assert gate.stats()["last_pulse"]["reason"] == "command"
    for _, close in reversed(closers):
        close()
    assert pin.state == 0
    sub.close()
    hook.close()


class OneReadReader:
    """A PlateReader that reads every crop as AB123CD, timed like the cloud reader: from the crop."""

    def read(self, crop: PlateCrop) -> list[PlateRead]:
        return [PlateRead(crop.camera_id, "AB123CD", 0.95, 0.9, crop.detection.box, crop.wall_time,
                          crop.mono_time, crop=crop)]

    def usage(self) -> None:
        return None

    def close(self) -> None:
        pass


def test_a_late_read_never_moves_the_relay(tmp_path: Path):
    """Stale by frame age, or marked late by the reader worker: an event with late=true, never the gate."""
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": "clip.mp4"}, {"id": "side", "source": "clip2.mp4"}],
        "rules": {"allow": [{"plate": "AB123CD"}]},
        "decision": {"max_decision_age_s": 2.0},
        "relay": {"type": "gpio", "pin": "17", "pulse_s": 0.05, "cooldown_s": 0.0},
    })
    factory = MockFactory()
    closers: Closers = []
    outputs = build_outputs(cfg, tmp_path, closers, relay_kw={"pin_factory": factory})
    gate = outputs.relay
    assert gate is not None and outputs.sinks() == [gate]
    out = io.StringIO()
    rules = AccessRules(cfg.rules)
    rules.load()
    dispatch = Dispatcher(Decider(cfg.decision, rules), [gate, JsonLinesSink(out)])
    pin = factory.pin(17)

    # 1: the frame is older than decision.max_decision_age_s (a read that took too long)
    now = time.monotonic()
    dispatch.handle(PlateRead("gate", "AB123CD", 0.95, 0.9, Box(10, 10, 110, 40), time.time() - 3, now - 3))

    # 2: a fresh-looking read the reader worker marked late (its crop waited past the limit, e.g. in the
    # outbox through an outage): the worker's clock runs 3 s ahead so only its ``late`` flag can stop it
    worker = ReadWorker(OneReadReader(), None, cfg.reader, dispatch.answer, stop=threading.Event(),
                        max_decision_age_s=cfg.decision.max_decision_age_s, clock=lambda: time.monotonic() + 3)
    worker.start()
    box = Box(10, 10, 110, 40)
    assert worker.submit(PlateCrop("side", 1, time.time(), time.monotonic(), Detection(box, 0.9), box,
                                   b"jpeg", 10.0, 0.5))
    deadline = time.monotonic() + 5
    while (worker.stats()["late_reads"] < 1 or not worker.idle()) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.close()

    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["camera_id"], e["plate"], e["late"]) for e in events] == [("gate", "AB123CD", True),
                                                                          ("side", "AB123CD", True)]
    assert all(e["action"] != "open" for e in events)
    assert [s.state for s in pin.states] == [False] and gate.stats()["pulses"] == 0  # never on

    # the same wiring opens for a fresh read: the relay was reachable all along
    dispatch.handle(PlateRead("gate", "AB123CD", 0.95, 0.9, Box(10, 10, 110, 40), time.time(), time.monotonic()))
    assert pin.state == 1 and json.loads(out.getvalue().splitlines()[-1])["action"] == "open"
    gate.close()
    assert pin.state == 0
