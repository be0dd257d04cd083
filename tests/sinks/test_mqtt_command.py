"""The open command's rules on a settable clock (no broker): what opens, what is refused and why,
one warning line per interval however many are refused; and discovery never carries the payload."""

from __future__ import annotations

import json
import logging

import pytest

from agent.lograte import RateLimitedLog
from agent.sinks.mqtt_command import GateCommands, discovery
from tests.clock import Clock

TOPIC = "pa/gate/gate/set"


def commands(clock: Clock, relay_answers: list[bool] | None = None) -> tuple[GateCommands, list[str]]:
    opened: list[str] = []
    answers = iter(relay_answers or [])

    def open_gate(cam: str) -> bool:
        opened.append(cam)
        return next(answers, True)

    return GateCommands("S3CRET", ["gate"], open_gate, min_interval_s=5.0, clock=clock, warn_every_s=10.0), opened


def test_only_a_live_exact_command_for_a_gate_opens_and_at_most_once_per_interval() -> None:
    clock = Clock()
    cmd, opened = commands(clock, relay_answers=[True, False, True])
    assert not cmd.handle(TOPIC, b"S3CRET", retained=True)
    assert not cmd.handle("pa/side/gate/set", b"S3CRET", retained=False)
    assert not cmd.handle("gate/set", b"S3CRET", retained=False)
    for wrong in (b"s3cret", b"S3CRET ", b"S3CRE", b""):
        assert not cmd.handle(TOPIC, wrong, retained=False)
    assert opened == []
    assert cmd.handle(TOPIC, b"S3CRET", retained=False) and opened == ["gate"]
    clock.set(clock.t + 4.9)
    assert not cmd.handle(TOPIC, b"S3CRET", retained=False)  # too soon: the relay is not even asked
    clock.set(clock.t + 0.1)
    assert not cmd.handle(TOPIC, b"S3CRET", retained=False)  # the relay said busy (on or cooling down)
    clock.set(clock.t + 5.0)
    assert cmd.handle(TOPIC, b"S3CRET", retained=False)
    assert opened == ["gate"] * 3
    assert cmd.stats() == {"commands": 2, "commands_rejected": 9, "commands_rejected_by": {
        "retained": 1, "camera": 2, "payload": 4, "too_soon": 1, "busy": 1}}


def test_a_failing_relay_is_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(cam: str) -> bool:
        raise RuntimeError("relay: not started")

    cmd = GateCommands("S3CRET", ["gate"], broken, min_interval_s=2.0, clock=Clock())
    assert not cmd.handle(TOPIC, b"S3CRET", retained=False)
    assert cmd.stats()["commands_rejected_by"] == {"error": 1} and "not started" in caplog.text


def test_a_flood_of_refusals_logs_one_line_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    cmd, _ = commands(clock)
    with caplog.at_level(logging.WARNING):
        for i in range(200):
            cmd.handle(TOPIC, f"junk-{i}".encode(), retained=False)
            clock.set(clock.t + 0.01)  # 200 in 2 s: one line
        clock.set(clock.t + 10.0)
        cmd.handle(TOPIC, b"junk", retained=False)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0].endswith("suppressed=0") and lines[1].endswith("suppressed=199"), lines
    assert cmd.stats()["commands_rejected"] == 201


def test_rate_limited_log_keeps_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("t"), 1.0, clock)
    try:
        raise ValueError("boom")
    except ValueError:
        assert log(logging.ERROR, "step failed", exc_info=True)
        assert not log(logging.ERROR, "step failed", exc_info=True)
    assert caplog.records[0].exc_info is not None and log.suppressed == 1


def test_discovery_announces_state_never_the_command() -> None:
    msgs = dict(discovery("agent 1", "pa", "homeassistant/", ["gate", "side"], ["gate"]))
    assert msgs["homeassistant/button/agent_1/gate_open/config"] == b""  # an old button removed
    docs = {t: json.loads(p) for t, p in msgs.items() if p}
    assert {t for t in docs if "_plate/" in t or "/binary_sensor/" in t} == {
        "homeassistant/sensor/agent_1/gate_plate/config", "homeassistant/sensor/agent_1/side_plate/config",
        "homeassistant/binary_sensor/agent_1/gate_gate/config"}
    assert not any("/button/" in t for t in docs)
    assert not any("command" in k or "payload_press" in k for d in docs.values() for k in d)
