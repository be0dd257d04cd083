"""Gate relay safety on its real timer thread and real clock: max_on_s, an "on" write that fails,
a serial board that vanishes mid-pulse. Times come from the mock pin's or the board's own records."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from agent.config import RelayConfig
from agent.errors import SinkError
from agent.sinks.relay import Gate, GpioRelay
from tests.sinks.lcus import LcusEmulator


def wait_until(check: Callable[[], object], timeout_s: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def on_periods(pin: MockPin) -> list[float]:
    """How long the pin stayed high each time, from its own timestamps."""
    states = list(pin.states)
    return [b.timestamp - a.timestamp for a, b in zip(states, states[1:], strict=False) if a.state and not b.state]


@pytest.fixture
def gates() -> Iterator[list[Gate]]:
    made: list[Gate] = []
    yield made
    for g in made:
        g.close()


def test_real_timer_thread_forces_off_after_max_on_s(gates: list[Gate], caplog) -> None:
    factory = MockFactory()
    # built in code, not loaded: the config check (pulse_s <= max_on_s) is not what keeps it short
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=30.0, max_on_s=0.3, cooldown_s=0.0)
    gate = Gate(cfg, GpioRelay(cfg, pin_factory=factory))
    gates.append(gate)
    gate.start()
    pin = factory.pin(17)
    assert gate.pulse("gate") is True and pin.state == 1
    wait_until(lambda: pin.state == 0 and not gate.is_on, what="the timer thread's off")
    (held,) = on_periods(pin)
    # max_on_s (0.3 s), not pulse_s (30 s); no lower bound: the pin's "on" timestamp comes after
    # the gate reads its clock, and a loaded machine can run other threads in between
    assert held < 2.0, held
    # the thread logs after it has switched off and counted: wait for the line itself
    wait_until(lambda: "forced off after max_on_s" in caplog.text, what="the forced-off log line")
    s = gate.stats()
    assert (s["state"], s["pulses"], s["forced_off"]) == ("off", 1, 1)


class FailingOnPin(MockPin):
    """A pin whose "on" write reaches the relay but reports an I/O error: its state is unknown."""

    fail_on = True

    def _set_state(self, value: bool) -> None:
        super()._set_state(value)
        if value and self.fail_on:
            raise OSError(5, "Input/output error")


def test_on_write_that_raises_switches_off_at_once(gates: list[Gate]) -> None:
    factory = MockFactory(pin_class=FailingOnPin)
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=30.0, max_on_s=60.0, cooldown_s=0.0)
    gate = Gate(cfg, GpioRelay(cfg, pin_factory=factory))
    gates.append(gate)
    gate.start()
    told: list[bool] = []
    gate.add_state_listener(told.append)
    pin = factory.pin(17)
    with pytest.raises(SinkError, match="GPIO write failed"):
        gate.pulse("gate")
    wait_until(lambda: told == [False], what="the off after a failed on, told to the listeners")
    assert [s.state for s in pin.states] == [False, True, False]
    (held,) = on_periods(pin)
    assert held < 2.0, held  # at once, not after pulse_s (30 s)
    s = gate.stats()
    assert (s["state"], s["errors"], s["pulses"]) == ("off", 1, 0) and "Input/output error" in s["last_error"]
    pin.fail_on = False  # the next pulse works normally
    assert gate.pulse("gate") is True and pin.state == 1


def test_serial_board_vanishing_mid_pulse_is_counted_and_switched_off_when_back(
        tmp_path: Path, gates: list[Gate], caplog) -> None:
    caplog.set_level(logging.INFO, logger="agent.sinks.relay")
    first = LcusEmulator()
    second: LcusEmulator | None = None
    port = tmp_path / "ttyRELAY"  # a stable name, as udev gives a USB board
    os.symlink(first.port, port)
    cfg = RelayConfig(type="serial", port=str(port), pulse_s=0.3, max_on_s=5.0, cooldown_s=0.0)
    gate = Gate.from_config(cfg)
    gates.append(gate)
    try:
        gate.start()
        first.wait_for(0)
        assert gate.pulse("gate") is True
        first.wait_for(1)
        first.close()  # unplugged mid-pulse: every write now fails
        os.unlink(port)  # and its name goes, as udev removes it (a dead pty's number is soon reused)
        wait_until(lambda: gate.stats()["errors"] >= 3, what="failed offs counted")
        s = gate.stats()
        assert s["state"] == "on" and "serial" in s["last_error"]  # not confirmed off: not reported off
        assert gate.alive  # the thread that guarantees the off goes on
        assert caplog.text.count("relay off failed") == 1  # once, not at every retry

        second = LcusEmulator()  # plugged back in: the same name, a new device
        os.symlink(second.port, port)
        second.wait_for(0)  # the off the relay owed
        wait_until(lambda: not gate.is_on, what="the relay reported off")
        assert gate.stats()["state"] == "off"
        # the owed off is logged (after the state changed) as the end of the pulse, or as owed to a board
        # that is back: which one depends on whether the retry or the idle check found the new board first
        wait_until(lambda: "relay off after" in caplog.text or "relay off: the board is back" in caplog.text,
                   what="the log line of the owed off")
        assert gate.pulse("gate") is True  # and it works again
        second.wait_for(1)
        second.wait_for(0, after=2)
        assert second.errors == []
    finally:
        gate.close()
        if second is not None:
            second.close()
