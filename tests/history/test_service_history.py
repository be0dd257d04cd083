"""The store in the running agent: cars through the real pipeline (clip, motion, detector, reader
contract server, decisions), published on a real broker; the store holds the same events as MQTT,
one to one, with the pass's paid reads, crops and frames, and the API serves them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
from gpiozero.pins.mock import MockFactory

from agent import config
from agent.tools.scene import write_clip
from agent.service import Service
from tests.fixtures_mqtt import Broker, Subscriber
from tests.sinks.test_mqtt import wait_until
from tests.test_service import PLATES, short_scene
from tests.web.client import Client


def test_the_store_holds_the_mqtt_events_one_to_one(tmp_path: Path, pr_sdk_server, mqtt_broker: Broker):
    clip = tmp_path / "gate.mp4"
    write_clip(short_scene(PLATES), clip)
    cap = cv2.VideoCapture(str(clip))
    clip_size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
    cap.release()
    pr_sdk_server.texts.extend(p.replace(" ", "") for p in PLATES)
    state = tmp_path / "state"
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": str(clip), "type": "file", "fps_max": 15.0}],
        "reader": {"type": "sdk", "url": pr_sdk_server.url, "rate_per_s": 0.0},
        "rules": {"allow": [{"plate": "AB12 CDE"}], "deny": [{"plate": "XX99 XXX"}]},
        "decision": {"pass_window_s": 2.0},
        "relay": {"type": "gpio", "pin": "17", "pulse_s": 0.3, "cooldown_s": 0.0},
        "mqtt": {"enabled": True, "port": mqtt_broker.port, "prefix": "pa"},
        "storage": {"state_dir": str(state)},
        "status": {"port": 0},
        "history": {"save_frames": True},
    })
    sub = Subscriber(mqtt_broker.port, "pa/gate/event")
    service = Service(cfg, stop_when_sources_end=True, relay_kw={"pin_factory": MockFactory()})
    service.start()
    try:
        mqtt = service.parts.outputs.mqtt
        assert mqtt is not None
        wait_until(lambda: mqtt.stats()["connected"])
        assert service.run() == 0
        service.parts.dispatcher.tick(everything=True)  # the last pass ends now, not at close
        n = service.parts.dispatcher.counters["events"]
        msgs = sub.collect(lambda got: len(got) >= n)
        store = service.parts.store
        assert store is not None
        wait_until(lambda: store.stats()["events"] == n)
        server = service.status.server
        assert server is not None
        client = Client(server.port)
        api = client.get("/api/events?limit=100").json()["events"]
        answers = [client.get(e["frame"]) for e in api if e["type"] == "new"]
        assert [a.status for a in answers] == [200] * len(answers)
        frames = [a.body for a in answers]
        history = service.status.board.document()["history"]
        assert history["enabled"] and history["events"] == n and history["dropped_events"] == 0
        assert history["reads"] == len(PLATES) and history["storage"] == "disk"
        assert "history" not in service.watchdog.stalled()
    finally:
        service.close()
        sub.close()
    published = {e["event_id"]: e for e in (json.loads(m.payload) for m in msgs)}
    assert len(published) == n == len(msgs) >= len(PLATES)
    db = sqlite3.connect(state / "history.sqlite3")
    stored = {r[0]: r[1:] for r in db.execute("SELECT event_id, kind, plate, action, rule, reason, direction,"
                                              " camera_id FROM events")}
    db.close()
    assert stored.keys() == published.keys()  # one to one
    for event_id, e in published.items():
        assert stored[event_id] == (e["type"], e["plate"], e["action"], e["rule"], e["reason"], e["direction"],
                                    e["camera_id"])
    assert {e["event_id"] for e in api} == published.keys()
    first = {e["plate"]: e for e in api if e["type"] == "new"}
    assert [first[p.replace(" ", "")]["action"] for p in PLATES] == ["open", "deny", "none"]
    assert sum(e["paid_calls"] for e in first.values()) == len(pr_sdk_server.lookups()) == len(PLATES)
    assert all(e["crop"] for e in first.values())
    assert len(frames) == len(PLATES)  # save_frames: the whole frame of each pass's best read
    for jpeg in frames:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == clip_size
