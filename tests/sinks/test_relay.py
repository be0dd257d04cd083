"""Gate relay: gpio (MockFactory), serial (LCUS emulator on a pty, loop://), pulse timing and safety."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import serial
from gpiozero.pins.mock import MockFactory

from agent.config import RelayConfig
from agent.errors import SinkError
from agent.sinks.relay import Gate, GpioRelay, SerialRelay, frame, relay_test
from agent.types import Box, Decision, PlateRead
from tests.clock import Clock
from tests.sinks.lcus import LcusEmulator
from tests.sinks.test_mqtt import wait_until


def decision(action: str = "open", pass_id: str = "p1", camera: str = "gate", late: bool = False) -> Decision:
    read = PlateRead(camera, "AB123CD", 0.9, 0.9, Box(0, 0, 10, 10), time.time(), time.monotonic())
    return Decision("e", pass_id, "new", camera, "AB123CD", read, action, "allow:AB123CD", "exact match",
                    late, time.time())


def gpio_gate(factory: MockFactory, **kw) -> Gate:
    cfg = RelayConfig(type="gpio", pin="17", **{"pulse_s": 0.3, "cooldown_s": 0.0, **kw})
    return Gate(cfg, GpioRelay(cfg, pin_factory=factory))


@pytest.fixture
def emulator():
    emu = LcusEmulator()
    yield emu
    emu.close()


def test_gpio_pulse_on_then_off_after_pulse_s(monkeypatch: pytest.MonkeyPatch):
    """The relay's own timer thread switches off at exactly pulse_s, by the injected clock (which
    also stamps the mock pin's states): not a moment early, and without the test sleeping."""
    clock = Clock(0.0)
    monkeypatch.setattr("gpiozero.pins.mock.monotonic", clock)
    factory = MockFactory()
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=0.3, cooldown_s=0.0)
    gate = Gate(cfg, GpioRelay(cfg, pin_factory=factory), clock=clock)
    gate.start()
    pin = factory.pin(17)
    states = []
    gate.add_state_listener(states.append)
    gate.send(decision())
    assert pin.state == 1 and gate.stats()["state"] == "on"
    clock.set(math.nextafter(0.3, 0))
    clock.wait_reads("relay")  # a whole turn of the timer thread just before 0.3
    assert pin.state == 1 and gate.is_on
    clock.set(0.3)
    wait_until(lambda: states == [True, False])
    assert [(s.timestamp, s.state) for s in pin.states] == [(0.0, False), (0.0, True), (0.3, False)]
    assert gate.stats()["pulses"] == 1 and gate.stats()["last_pulse"]["duration_s"] == 0.3
    gate.close()


def test_active_low_relay_idles_high():
    factory = MockFactory()
    gate = gpio_gate(factory, active_high=False)
    gate.start()
    pin = factory.pin(17)
    assert pin.state == 1  # off = high on an active-low board
    gate.pulse("gate")
    assert pin.state == 0
    wait_until(lambda: pin.state == 1)  # off again after pulse_s
    gate.pulse("gate")
    gate.close()  # closing mid-pulse drives it off
    assert [s.state for s in pin.states][-2:] == [False, True]


def test_only_open_fresh_decisions_and_one_pulse_per_pass():
    factory = MockFactory()
    gate = gpio_gate(factory, pulse_s=0.05, cameras=["gate"])
    gate.start()
    pin = factory.pin(17)
    for d in (decision("deny"), decision("none"), decision(late=True), decision(camera="other")):
        gate.send(d)
    assert len(pin.states) == 1 and gate.stats()["pulses"] == 0
    gate.send(decision(pass_id="p1"))
    wait_until(lambda: not gate.is_on)  # the pulse is over: only the pass rule can skip the update
    gate.send(decision(pass_id="p1"))  # the pass's update
    assert gate.stats()["pulses"] == 1 and gate.stats()["skipped_same_pass"] == 1
    gate.close()


def test_cooldown_with_injected_clock():
    factory = MockFactory()
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=1.0, cooldown_s=5.0)
    t = [100.0]
    gate = Gate(cfg, GpioRelay(cfg, pin_factory=factory), clock=lambda: t[0])
    gate.start(thread=False)
    assert gate.pulse() is True
    assert gate.pulse() is False and gate.stats()["skipped_busy"] == 1
    t[0] = 101.0
    gate.service()
    assert not gate.is_on
    t[0] = 104.0
    assert gate.pulse() is False and gate.stats()["skipped_cooldown"] == 1
    t[0] = 105.0
    assert gate.pulse() is True
    gate.close()


def test_max_on_s_enforced_even_with_a_bad_deadline():
    factory = MockFactory()
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=0.2, max_on_s=0.3, cooldown_s=0)
    t = [0.0]
    gate = Gate(cfg, GpioRelay(cfg, pin_factory=factory), clock=lambda: t[0])
    gate.start(thread=False)
    gate.pulse()
    gate._off_at = 1e9  # simulate a corrupted deadline: the independent max_on_s check still wins
    t[0] = 0.29
    assert gate.service() is not None and gate.is_on
    t[0] = 0.3
    assert gate.service() is None and not gate.is_on
    assert gate.stats()["forced_off"] == 1 and factory.pin(17).state == 0
    gate.close()


def test_failed_off_is_retried_until_it_works():
    factory = MockFactory()
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=0.1, cooldown_s=0)
    t = [0.0]
    driver = GpioRelay(cfg, pin_factory=factory)
    gate = Gate(cfg, driver, clock=lambda: t[0])
    gate.start(thread=False)
    gate.pulse()
    real_set, fails = driver.set, [2]

    def flaky(on: bool) -> None:
        if not on and fails[0]:
            fails[0] -= 1
            raise SinkError("bus error")
        real_set(on)

    driver.set = flaky  # type: ignore[method-assign]
    t[0] = 0.2
    assert gate.service() == pytest.approx(0.1) and gate.is_on  # retried with backoff: 0.1 s, then 0.2 s
    assert not gate.stats()["ok"] and gate.pulse() is False and gate.stats()["skipped_failing"] == 1
    t[0] = 0.3
    assert gate.service() == pytest.approx(0.2) and gate.failing_s() == pytest.approx(0.1)
    t[0] = 0.5
    assert gate.service() is None and not gate.is_on and factory.pin(17).state == 0
    assert gate.stats()["errors"] == 2 and gate.stats()["ok"] and gate.failing_s() == 0.0
    gate.close()


def test_busy_pin_fails_fast():
    factory = MockFactory()
    gpio_gate(factory).start()
    with pytest.raises(SinkError, match="GPIO pin 17"):
        gpio_gate(factory).start()


@pytest.mark.parametrize(
    ("proto", "on", "off"),
    [("lcus", "a00201a3", "a00200a2"), ("at", b"AT+CH2=1\r\n".hex(), b"AT+CH2=0\r\n".hex()),
     ("raw", "ff0101", "ff0100")],
)
def test_serial_frames_over_loop(proto: str, on: str, off: str):
    cfg = RelayConfig(type="serial", port="loop://", protocol=proto, channel=2, on_bytes="FF 01 01",
                      off_bytes="FF0100", pulse_s=0.05, cooldown_s=0)
    assert frame(cfg, True).hex() == on and frame(cfg, False).hex() == off
    port = serial.serial_for_url("loop://", timeout=10.0)
    gate = Gate(cfg, SerialRelay(cfg, serial_for_url=lambda *a, **k: port))
    gate.start()
    gate.pulse()
    got = port.read(len(bytes.fromhex(off)) * 3)  # waits for the three frames: off, on, off
    assert got == bytes.fromhex(off + on + off)
    gate.close()


def test_serial_lcus_board_over_pty(emulator: LcusEmulator):
    cfg = RelayConfig(type="serial", port=emulator.port, protocol="lcus", channel=1, pulse_s=0.3, cooldown_s=0)
    clock = Clock(0.0)
    gate = Gate(cfg, SerialRelay(cfg), clock=clock)
    gate.start()
    emulator.wait_for(0)
    gate.pulse()
    emulator.wait_for(1)
    clock.set(math.nextafter(0.3, 0))
    clock.wait_reads("relay")
    assert gate.is_on
    clock.set(0.3)
    emulator.wait_for(0, after=2)  # on the wire before the gate books the pulse's end: wait for that too
    wait_until(lambda: "duration_s" in gate.stats()["last_pulse"])
    assert gate.stats()["last_pulse"]["duration_s"] == 0.3
    gate.close()
    emulator.wait_for(0, after=3)  # close drives it off once more
    assert [f[1:] for f in emulator.frames] == [(1, 0), (1, 1), (1, 0), (1, 0)]
    assert emulator.errors == [] and not emulator.on


CHILD = textwrap.dedent("""
    import sys, time
    from agent.config import RelayConfig
    from agent.sinks.relay import Gate
    gate = Gate.from_config(RelayConfig(type="serial", port=sys.argv[1], pulse_s=30, max_on_s=60))
    gate.start()
    gate.pulse("gate", reason="crash-test")
    print("on", flush=True)
    time.sleep(60)
""")


def test_crash_mid_pulse_leaves_relay_off_after_restart(emulator: LcusEmulator):
    child = subprocess.Popen([sys.executable, "-c", CHILD, emulator.port], stdout=subprocess.PIPE,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"on"
        emulator.wait_for(1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
    finally:
        if child.poll() is None:
            child.kill()
    time.sleep(0.1)
    assert emulator.on  # a dead process cannot switch it off: the restart must
    n = len(emulator.frames)
    cfg = RelayConfig(type="serial", port=emulator.port)
    gate = Gate.from_config(cfg)  # the agent restarted by systemd
    gate.start()
    emulator.wait_for(0, after=n, timeout=2)
    assert not emulator.on and emulator.errors == []
    gate.close()


def test_relay_test_command(emulator: LcusEmulator, capsys):
    cfg = RelayConfig(type="serial", port=emulator.port, pulse_s=0.1)
    assert relay_test(cfg) == 0
    emulator.wait_for(0, after=2)
    assert [f[2] for f in emulator.frames][:3] == [0, 1, 0] and "off: ok" in capsys.readouterr().out
    assert relay_test(dataclasses.replace(cfg, port="/nonexistent/tty")) == 1
