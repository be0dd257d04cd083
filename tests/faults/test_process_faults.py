"""Faults of the agent process itself, through ``plate-agent run``: SIGKILL mid-run and a restart
(outbox drained, relay off), and a dead broker, camera and reader at
once — the agent keeps running and pinging the watchdog, reports all three, and recovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Pings, http_get, wait_until
from tests.fixtures_mqtt import Broker, free_port
from tests.fixtures_rtsp import RtspServer, require_rtsp
from tests.prserver import PRServer
from tests.sinks.lcus import LcusEmulator

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
READER = ('type = "sdk"\nurl = "{url}"\nretries = 0\nbackoff_initial_s = 0.1\nbackoff_max_s = 0.5\n'
          'timeout_connect_s = 0.5\ntimeout_read_s = 1.0\nrate_per_s = 0.0\n')


class Agent:
    """``python -m agent run`` with its stderr in a file and its /status on ``port``."""

    def __init__(self, tmp: Path, toml: str, name: str = "agent", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.cfg = tmp / f"{name}.toml"
        self.cfg.write_text(f'{toml}\n[storage]\nstate_dir = "{tmp / "state"}"\n'
                            f'[status]\nport = {self.port}\nmqtt_interval_s = 0.5\n')
        self.log = tmp / f"{name}.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(self.cfg)], cwd=ROOT,
                                         stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})

    def status(self) -> tuple[int, dict] | None:
        try:
            code, body = http_get(self.port, timeout_s=2.0)
        except OSError:
            return None
        return code, json.loads(body)

    def doc(self) -> dict:
        got = wait_until(self.status, what="/status answering")
        return got[1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def lcus() -> Iterator[LcusEmulator]:
    emu = LcusEmulator()
    yield emu
    emu.close()


def test_sigkill_mid_pulse_and_outage_then_restart_drains_and_relay_off(
        tmp_path: Path, clips, pr_sdk_server: PRServer, lcus: LcusEmulator) -> None:
    server = pr_sdk_server
    server.texts.extend(["AB12CDE", "XX99XXX"])
    common = (f'[reader]\n{READER.format(url=server.url)}'
              '[rules]\nallow = [{ plate = "AB12 CDE" }]\n[decision]\npass_window_s = 1.0\nmax_decision_age_s = 1.0\n'
              f'[relay]\ntype = "serial"\nport = "{lcus.port}"\npulse_s = 30.0\nmax_on_s = 60.0\ncooldown_s = 0.0\n')
    cam = '[[cameras]]\nid = "gate"\nsource = "{}"\ntype = "file"\nfps_max = 15.0\n'
    first = Agent(tmp_path, cam.format(clips(("AB12 CDE", "XX99 XXX"))) + common, "first")
    try:
        lcus.wait_for(1, timeout=30)  # the allowed car: a 30 s pulse starts
        server.stop_listening()  # the second car's crop goes to the outbox
        wait_until(lambda: (s := first.status()) and s[1]["reader"]["outbox"]["depth"] >= 1, what="a parked crop")
        first.proc.kill()  # SIGKILL: no shutdown code runs
        assert first.proc.wait(5) == -signal.SIGKILL
    finally:
        first.stop()
    assert lcus.on  # nothing switched it off: the restart must
    frames_before = len(lcus.frames)
    # the outage outlasts max_decision_age_s (1 s) for certain, whatever the machine's speed: the
    # parked crop must come back too late to open anything
    time.sleep(1.5)

    server.resume()
    second = Agent(tmp_path, cam.format(clips((), lead_in_s=2.0)) + common, "second")
    try:
        lcus.wait_for(0, after=frames_before, timeout=15)  # off at start, before anything else
        assert not lcus.on
        doc = wait_until(lambda: (s := second.status()) and s[1]["reader"]["outbox"]["depth"] == 0
                         and s[1]["reader"]["crops_read"] >= 1 and s[1], what="the outbox drained")
        assert doc["reader"]["late_reads"] == doc["reader"]["reads"] and doc["relay"]["pulses"] == 0, doc  # too late
        assert [r.status for r in server.lookups()].count(200) >= 2
        assert not lcus.on and all(f[2] == 0 for f in lcus.frames[frames_before:])
    finally:
        assert second.stop() == 0
    assert "Traceback" not in second.text()


@pytest.fixture
def pings(tmp_path: Path) -> Iterator[Pings]:
    p = Pings(tmp_path / "notify.sock")
    yield p
    p.close()


def test_dead_broker_camera_and_reader_at_once_then_all_return(
        tmp_path: Path, pr_sdk_server: PRServer, pings: Pings) -> None:
    require_rtsp()
    camera = RtspServer()  # not started: connection refused
    broker = Broker(tmp_path)  # not started
    reader = pr_sdk_server
    reader.stop_listening()
    toml = (f'[[cameras]]\nid = "gate"\nsource = "{camera.url}"\nread_timeout_s = 1.0\nopen_timeout_s = 2.0\n'
            'reconnect_max_s = 1.0\n'
            f'[reader]\n{READER.format(url=reader.url)}usage_poll_s = 1.0\n'
            f'[mqtt]\nenabled = true\nport = {broker.port}\nreconnect_min_s = 0.5\nreconnect_max_s = 1.0\n')
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    agent = Agent(tmp_path, toml, env=env)
    try:
        code, doc = wait_until(lambda: (s := agent.status()) and s[1]["reader"]["reachable"] is False
                               and s[1]["cameras"]["gate"]["last_error"] and pings.messages and s,
                               what="the dead reader and camera noticed, READY sent")
        assert code == 503 and doc["ok"] is False
        assert doc["cameras"]["gate"]["connected"] is False and doc["cameras"]["gate"]["last_error"]
        assert doc["reader"]["ok"] is False and doc["reader"]["last_error"].startswith("usage:")
        assert doc["mqtt"]["connected"] is False
        assert pings.messages[0].startswith("READY=1")
        assert "cameras 0/1 connected" in pings.messages[0] and "mqtt down" in pings.messages[0]  # STATUS=
        assert pings.count(2.0) >= 2  # dead dependencies are not a wedged agent
        assert agent.proc.poll() is None

        camera.start()
        broker.start()
        reader.resume()
        doc = wait_until(lambda: (s := agent.status()) and s[0] == 200 and s[1]["mqtt"]["connected"] and s[1],
                         timeout_s=40, what="recovery of all three")
        assert doc["cameras"]["gate"]["connected"] and doc["reader"]["reachable"] is True
        assert doc["reader"]["quota"]["limit"] == reader.total_calls
        assert pings.count(1.5) >= 1
        assert agent.stop() == 0
    finally:
        agent.stop()
        camera.close()
        broker.stop()
    assert "Traceback" not in agent.text()
