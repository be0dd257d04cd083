"""Home Assistant discovery: the documented keys of each entity (event, image, diagnostic sensors),
templates rendered the way Home Assistant renders them (Jinja, ``to_json``), and the retained
documents and the messages they point at on a real broker."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from agent.events import decision_payload
from agent.sinks.mqtt_command import EVENT_TYPES, discovery
from tests.fixtures_mqtt import Broker, Subscriber
from tests.sinks.test_mqtt import JPEG, decision, make_sink

sandbox = pytest.importorskip("jinja2.sandbox")  # the test extra; Home Assistant's templates are Jinja

# keys Home Assistant's MQTT docs list as required, per entity
REQUIRED = {"event": {"state_topic", "event_types"}, "image": {"image_topic"}, "sensor": {"state_topic"},
            "binary_sensor": {"state_topic"}}


def render(template: str, value_json: Any) -> str:
    """As Home Assistant does for ``value_template``: a sandboxed Jinja env with its ``to_json``."""
    env = sandbox.ImmutableSandboxedEnvironment()  # a missing key is Undefined: falsy, renders ""
    env.filters["to_json"] = json.dumps
    return env.from_string(template).render(value_json=value_json, value=json.dumps(value_json)).strip()


def docs(**kw: Any) -> dict[str, dict[str, Any]]:
    msgs = discovery("agent-1", "pa", "homeassistant", ["gate", "side"], ["gate"], **kw)
    return {t: json.loads(p) for t, p in msgs if p}


def test_every_entity_has_the_documented_keys() -> None:
    got = docs(crop_topic=True)
    for topic, conf in got.items():
        component = topic.split("/")[1]
        assert REQUIRED[component] <= set(conf), topic
        assert conf["unique_id"] and conf["device"]["identifiers"] == ["agent-1"], topic
        assert conf["availability_topic"] == "pa/status", topic
    assert len({c["unique_id"] for c in got.values()}) == len(got)
    event = got["homeassistant/event/agent-1/gate_pass/config"]
    assert event["state_topic"] == "pa/gate/event" and event["event_types"] == ["open", "deny", "none", "unread"]
    image = got["homeassistant/image/agent-1/side_crop/config"]
    assert image["image_topic"] == "pa/side/crop" and image["content_type"] == "image/jpeg"
    diagnostics = {t: c for t, c in got.items() if c.get("entity_category") == "diagnostic"}
    assert {c["unique_id"] for c in diagnostics.values()} == {
        "agent-1_reader_state", "agent-1_quota_used", "agent-1_reader_outbox", "agent-1_mqtt_outbox"}
    assert all(c["state_topic"] == "pa/status/summary" for c in diagnostics.values())
    # no image entity when crops do not go to their own topic (there would be nothing to show)
    assert not any("/image/" in t for t in docs(crop_topic=False))


def test_one_event_per_pass_with_plate_action_and_direction() -> None:
    template = docs()["homeassistant/event/agent-1/gate_pass/config"]["value_template"]
    new = decision_payload(dataclasses.replace(decision(), direction="approaching"))
    event = json.loads(render(template, new))
    assert event["event_type"] == "open" and event["event_type"] in EVENT_TYPES
    assert (event["plate"], event["action"], event["direction"]) == ("AB123CD", "open", "approaching")
    assert event["pass_id"] == "pass1"
    # a better read of the same pass: Home Assistant ignores an empty payload, so no second event
    assert render(template, {**new, "type": "update", "event_id": "e2"}) == ""
    # a pass that ended unread is an event of its own type
    unread = json.loads(render(template, {**new, "type": "unread", "plate": "", "action": "none"}))
    assert unread["event_type"] == "unread"
    denied = json.loads(render(template, {**new, "action": "deny", "event_id": "e3", "pass_id": "pass2"}))
    assert denied["event_type"] == "deny"


def test_diagnostic_sensors_read_the_status_document() -> None:
    sensors = {c["unique_id"].split("agent-1_")[1]: c["value_template"]
               for c in docs().values() if c.get("entity_category") == "diagnostic"}
    status = {"reader": {"state": "ok", "quota": {"used": 1210, "limit": 2500}, "outbox": {"depth": 4}},
              "mqtt": {"outbox": 2}}
    assert {k: render(t, status) for k, t in sensors.items()} == {
        "reader_state": "ok", "quota_used": "1210", "reader_outbox": "4", "mqtt_outbox": "2"}
    off = {"reader": {"ok": True, "type": "none", "state": "off"}, "mqtt": {"outbox": 0}}  # no reader
    assert render(sensors["quota_used"], off) == "None"  # Home Assistant's payload_reset: unknown
    assert render(sensors["reader_state"], off) == "off"


def test_discovery_is_retained_and_its_topics_carry_what_it_announces(mqtt_broker: Broker, tmp_path: Path) -> None:
    sink = make_sink(mqtt_broker, tmp_path, ha_discovery=True, publish_crop="topic", gate_cameras=["gate"])
    sink.start()
    live = Subscriber(mqtt_broker.port, ["pa/gate/#"])
    try:
        sink.send(decision(with_crop=True))
        got = live.collect(lambda ms: {m.topic for m in ms} >= {"pa/gate/event", "pa/gate/crop"})
        # a subscriber that comes later (Home Assistant restarting) still gets every config: retained
        late = Subscriber(mqtt_broker.port, ["homeassistant/#"])
        want = {"homeassistant/event/agent-test/gate_pass/config", "homeassistant/image/agent-test/gate_crop/config",
                "homeassistant/sensor/agent-test/quota_used/config"}
        configs = {m.topic: m for m in late.collect(lambda ms: {m.topic for m in ms} >= want)}
        late.close()
        assert all(configs[t].retain for t in want)
        event_conf = json.loads(configs["homeassistant/event/agent-test/gate_pass/config"].payload)
        image_conf = json.loads(configs["homeassistant/image/agent-test/gate_crop/config"].payload)
        by_topic = {m.topic: m.payload for m in got}
        assert image_conf["image_topic"] == "pa/gate/crop" and by_topic["pa/gate/crop"] == JPEG
        event = json.loads(render(event_conf["value_template"], json.loads(by_topic[event_conf["state_topic"]])))
        assert (event["event_type"], event["plate"]) == ("open", "AB123CD")
    finally:
        live.close()
        sink.close()
