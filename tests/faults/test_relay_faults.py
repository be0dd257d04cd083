"""A serial relay board that vanishes (a USB glitch) while the whole agent runs, then comes back under
the same name: noticed while idle, reported on /status, the watchdog pings stop once it stays dead,
and when it is back it is driven off first and pulses again. The board is the LCUS emulator on a pty,
reached through a symlink as udev names a USB board."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.faults.conftest import STALL_S, StillCamera, agent_config, wait_until
from tests.sinks.lcus import LcusEmulator

pytestmark = pytest.mark.faults


def test_serial_board_unplugged_while_idle_then_back(tmp_path: Path, notify, start_agent, caplog) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    pings, notifier = notify
    boards = [LcusEmulator()]
    port = tmp_path / "ttyRELAY"
    os.symlink(boards[0].port, port)
    try:
        cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": "fake://", "read_timeout_s": 1.0}],
                           relay={"type": "serial", "port": str(port), "pulse_s": 0.2, "cooldown_s": 0.0})
        agent = start_agent(cfg, notifier=notifier, stall_s=STALL_S, source_factory=lambda cam: StillCamera())
        relay = agent.service.parts.outputs.relay
        assert relay is not None
        boards[0].wait_for(0)
        assert pings.count(1.0) >= 1
        code, doc = agent.status()
        assert code == 200 and doc["relay"]["ok"] is True and doc["relay"]["state"] == "off"

        boards.pop().close()  # unplugged while the gate is idle: no pulse will tell
        os.unlink(port)
        code, doc = wait_until(lambda: (s := agent.status()) and s[1]["relay"]["ok"] is False and s,
                               what="the vanished board on /status")
        assert code == 503 and doc["ok"] is False and doc["relay"]["state"] == "unknown"
        # "lost" when the board went, "cannot open" once a retry found no port: which one depends on timing
        assert any(why in doc["relay"]["last_error"] for why in ("lost", "cannot open"))
        assert relay.pulse("gate") is False and agent.doc()["relay"]["skipped_failing"] == 1
        watchdog = agent.service.watchdog
        wait_until(lambda: not watchdog.healthy(), what="the dead relay stopping the pings")
        assert watchdog.stalled() == ["relay"]
        assert pings.count(1.0) == 0
        errors = agent.doc()["relay"]["errors"]
        assert 3 <= errors <= 3 + int(agent.doc()["relay"]["failing_s"] / 2.0) + 4  # backoff, not every 0.1 s

        boards.append(LcusEmulator())  # plugged back in: the same name, a new device
        os.symlink(boards[0].port, port)
        boards[0].wait_for(0, timeout=5.0)  # the off it was owed, first
        code, doc = wait_until(lambda: (s := agent.status()) and s[0] == 200 and s, what="the board back on /status")
        assert doc["relay"]["ok"] is True and doc["relay"]["state"] == "off"
        wait_until(watchdog.healthy, what="the pings again")
        assert pings.count(1.0) >= 1
        assert relay.pulse("gate") is True
        boards[0].wait_for(1)
        boards[0].wait_for(0, after=2)
        assert boards[0].errors == []
        log = caplog.text
        assert log.count("relay check failed") == 1, log  # once per state change, not per retry
        assert log.count("relay answers again") == 1
    finally:
        for b in boards:
            b.close()
