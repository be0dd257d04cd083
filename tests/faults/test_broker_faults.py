"""The MQTT broker restarted while the agent runs and a car passes: /status shows the broker gone,
the car's event waits in the outbox and arrives after the restart, the retained status summary
comes back. (The sink alone is covered in tests/sinks/test_mqtt.py; this is the whole agent.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.conftest import agent_config, wait_until
from tests.fixtures_mqtt import Broker, Subscriber

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_broker_restart_mid_run_loses_no_event(tmp_path: Path, clips, mqtt_broker: Broker, start_agent) -> None:
    sub = Subscriber(mqtt_broker.port, ["fa/+/event", "fa/status/summary"], client_id="fault-test-sub")
    try:
        cfg = agent_config(
            tmp_path,
            cameras=[{"id": "gate", "source": str(clips(("AB12 CDE",), lead_in_s=2.5)), "type": "file",
                      "fps_max": 15.0}],
            mqtt={"enabled": True, "port": mqtt_broker.port, "prefix": "fa", "reconnect_min_s": 0.5,
                  "reconnect_max_s": 1.0},
            decision={"pass_window_s": 1.0},
        )
        agent = start_agent(cfg)
        wait_until(lambda: agent.doc()["mqtt"]["connected"], what="connected to the broker")
        summary = json.loads(wait_until(lambda: sub.get(timeout=5), what="a status summary").payload)
        assert summary["mqtt"]["connected"] is True and "gate" in summary["cameras"]

        mqtt_broker.stop()  # before the car arrives (2.5 s into the clip)
        doc = wait_until(lambda: (d := agent.doc())["mqtt"]["connected"] is False and d, what="the broker gone")
        assert doc["mqtt"]["last_error"].startswith("disconnected")
        # kept in the outbox until the broker acknowledges it
        wait_until(lambda: (d := agent.doc())["events"] >= 1 and d["mqtt"]["outbox"] >= 1,
                   what="the car's event in the MQTT outbox")
        assert agent.status()[0] in (200, 503) and agent.service.watchdog.healthy()  # the broker is not a camera

        mqtt_broker.start()
        wait_until(lambda: agent.doc()["mqtt"]["connected"], timeout_s=30, what="reconnected")
        wait_until(lambda: agent.doc()["mqtt"]["outbox"] == 0, what="the outbox flushed")

        def fresh(got: list) -> list:
            return [s for m in got if m.topic == "fa/status/summary"
                    and (s := json.loads(m.payload))["mqtt"]["connected"] and s["events"] >= 1]

        # the event arrives after the restart, then a summary that says so
        sub.collect(lambda got: "fa/gate/event" in [m.topic for m in got] and fresh(got), timeout=20)
    finally:
        sub.close()
