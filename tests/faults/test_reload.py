"""SIGHUP to a running ``plate-agent run`` reloads the rules file: the same car, denied a pulse
before, opens the gate (a pty relay board) after. The file's mtime check is set to an hour, so only
the signal can have loaded the new rule."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import wait_until
from tests.faults.test_process_faults import READER, Agent
from tests.prserver import PRServer
from tests.sinks.lcus import LcusEmulator

pytestmark = pytest.mark.faults


def test_sighup_reloads_the_rules_and_the_next_car_opens_the_gate(
        tmp_path: Path, clips, pr_sdk_server: PRServer) -> None:
    pr_sdk_server.default_text = "AB12CDE"
    rules = tmp_path / "rules.csv"
    rules.write_text("plate,label,list\nZZ99ZZZ,someone else,allow\n")
    board = LcusEmulator()
    toml = (f'[[cameras]]\nid = "gate"\nsource = "{clips(("AB12 CDE",))}"\ntype = "file"\nloop = true\n'
            'fps_max = 15.0\n'
            '[upload]\npass_gap_s = 0.5\n'  # every lap of the clip is a new car
            f'[reader]\n{READER.format(url=pr_sdk_server.url)}'
            f'[rules]\nfile = "{rules}"\nreload_check_s = 3600.0\n'
            '[decision]\npass_window_s = 0.5\nrearm_s = 0.0\n'
            f'[relay]\ntype = "serial"\nport = "{board.port}"\npulse_s = 0.2\ncooldown_s = 0.0\n')
    agent = Agent(tmp_path, toml)
    try:
        wait_until(lambda: re.search(r"decision kind=new .*plate=AB12CDE action=none", agent.text()),
                   what="the car decided under the old rules")
        assert not any(f[2] for f in board.frames)  # no pulse: not on the list
        rules.write_text("plate,label,list\nAB12CDE,visitor,allow\n")
        agent.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "rules reloaded file=" in agent.text(), what="the reload")
        board.wait_for(1, timeout=20)  # the next lap of the car opens the gate
        assert re.search(r"plate=AB12CDE action=open rule=allow:AB12CDE", agent.text())
        assert agent.proc.poll() is None
        assert agent.stop() == 0
    finally:
        agent.stop()
        board.close()
    assert "Traceback" not in agent.text()
