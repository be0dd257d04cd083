"""The systemd watchdog means something: WATCHDOG=1 stops when a thread is wedged (a detector that
never returns, a reader stuck in its client) and goes on through a hung camera read, which the
capture's own read watchdog handles. Pings are observed on a real notify socket."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from tests.faults.conftest import STALL_S, StillCamera, agent_config, wait_until
from tests.prserver import PRServer

pytestmark = pytest.mark.faults


def test_wedged_pipeline_stops_the_pings_and_says_which(tmp_path: Path, notify, start_agent, caplog) -> None:
    pings, notifier = notify
    cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": "fake://", "read_timeout_s": 1.0}])
    agent = start_agent(cfg, notifier=notifier, stall_s=STALL_S, source_factory=lambda cam: StillCamera())
    assert pings.count(1.5) >= 2
    release = threading.Event()
    agent.service.parts.camera("gate").pipeline.step = lambda frame: release.wait(30)  # the detector never returns
    watchdog = agent.service.watchdog
    wait_until(lambda: not watchdog.healthy() and watchdog.stalled() == ["pipeline-gate"],
               what="the stall noticed, and whose")
    assert pings.count(1.0) == 0
    wait_until(lambda: "pipeline-gate" in caplog.text, what="the stalled thread named in the log")
    release.set()
    del agent.service.parts.camera("gate").pipeline.step
    wait_until(lambda: agent.service.watchdog.healthy(), what="turning again")
    assert pings.count(1.5) >= 1


def test_wedged_reader_stops_the_pings(tmp_path: Path, notify, clips, start_agent) -> None:
    pings, notifier = notify
    release = threading.Event()
    with PRServer(token=None) as server:
        cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": str(clips(("AB12 CDE",))), "type": "file"}],
                           reader={"type": "sdk", "url": server.url, "timeout_connect_s": 0.1,
                                   "timeout_read_s": 0.1, "rate_per_s": 0.0})
        agent = start_agent(cfg, notifier=notifier, stall_s=STALL_S)
        agent.service.parts.reader._reader.read = lambda crop: release.wait(60) and []  # stuck inside the client
        wait_until(lambda: agent.service.watchdog.stalled() == ["reader"], what="the reader stall noticed")
        assert pings.count(1.0) == 0
        release.set()
        wait_until(lambda: agent.service.watchdog.healthy(), what="the reader turning again")


def test_hung_camera_read_is_not_a_wedge(tmp_path: Path, notify, start_agent) -> None:
    pings, notifier = notify
    hang = threading.Event()
    cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": "fake://", "read_timeout_s": 0.5,
                                           "reconnect_max_s": 0.5}])
    agent = start_agent(cfg, notifier=notifier, stall_s=STALL_S, source_factory=lambda cam: StillCamera(hang))
    hang.set()
    # reported...
    wait_until(lambda: (s := agent.status())[0] == 503 and s[1]["cameras"]["gate"]["stalls"] >= 1,
               what="the capture's read watchdog on /status")
    assert pings.count(2.0) >= 2 and agent.service.watchdog.healthy()  # ...but not restarted for


class DyingPin(MockPin):
    """Once armed, the next "off" write ends the thread that makes it (an exception no catch-all takes)."""

    armed = False

    def _set_state(self, value: bool) -> None:
        if self.armed and not value:
            self.armed = False
            raise SystemExit("relay thread killed")
        super()._set_state(value)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point
def test_dead_relay_thread_stops_the_pings_and_says_which(tmp_path: Path, notify, start_agent, caplog) -> None:
    pings, notifier = notify
    factory = MockFactory(pin_class=DyingPin)
    cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": "fake://", "read_timeout_s": 1.0}],
                       relay={"type": "gpio", "pin": "17", "pulse_s": 0.2, "cooldown_s": 0.0})
    agent = start_agent(cfg, notifier=notifier, stall_s=STALL_S, source_factory=lambda cam: StillCamera(),
                        relay_kw={"pin_factory": factory})
    assert pings.count(1.0) >= 1 and agent.service.watchdog.healthy()
    pin = factory.pin(17)
    pin.armed = True
    assert agent.service.parts.outputs.relay.pulse("gate")  # the timer thread dies making the off
    wait_until(lambda: not agent.service.watchdog.healthy(), what="the dead relay thread noticed")
    assert agent.service.watchdog.stalled() == ["relay"]
    assert pin.state == 1  # still on: only a restart (off at start) can help, so the pings must stop
    assert pings.count(1.0) == 0
    wait_until(lambda: "threads stalled or dead: relay" in caplog.text, what="the dead thread named in the log")
