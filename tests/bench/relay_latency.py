"""Time from ``Gate.send(decision)`` (and from ``Decider.observe(read)``) to the relay being on.

gpio: gpiozero MockFactory; the time is taken when the mock pin changes state (a callback).
serial: an LCUS emulator on a pty; the time is taken when the emulator has read the full frame.
Run: .venv/bin/python -m tests.bench.relay_latency [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

from gpiozero.pins.mock import MockFactory, MockPin

from agent.config import DecisionConfig, RelayConfig, RuleEntry, RulesConfig
from agent.decide import Decider
from agent.rules import AccessRules
from agent.sinks.relay import Gate, GpioRelay
from agent.types import Box, PlateRead
from tests.sinks.lcus import LcusEmulator


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(name: str, xs: list[float]) -> None:
    ms = [x * 1000 for x in xs]
    print(f"{name:38s} n={len(ms)} p50={statistics.median(ms):.3f} ms p95={pct(ms, 0.95):.3f} ms "
          f"max={max(ms):.3f} ms")


class StampPin(MockPin):
    on_at = 0.0

    def _change_state(self, value):  # type: ignore[no-untyped-def]
        if value:
            StampPin.on_at = time.perf_counter()
        return super()._change_state(value)


def decisions() -> Decider:
    """Fresh allowed reads, one pass each (tiny pass window), through the real Decider and rules."""
    rules = AccessRules(RulesConfig(allow=[RuleEntry(plate="AB123CD")]))
    rules.load()
    return Decider(DecisionConfig(pass_window_s=0.001, rearm_s=0), rules)


def read() -> PlateRead:
    now = time.monotonic()
    return PlateRead("gate", "AB123CD", 0.9, 0.9, Box(0, 0, 10, 10), time.time(), now)


def bench_gpio(n: int) -> None:
    factory = MockFactory(pin_class=StampPin)
    cfg = RelayConfig(type="gpio", pin="17", pulse_s=0.001, cooldown_s=0.0)
    gate = Gate(cfg, GpioRelay(cfg, pin_factory=factory))
    gate.start()
    dec = decisions()
    send, full = [], []
    for _ in range(n):
        while gate.is_on:
            time.sleep(0.0005)
        time.sleep(0.002)  # a new pass each time
        t0 = time.perf_counter()
        (d,) = [x for x in dec.observe(read()) if x.action == "open"]
        t1 = time.perf_counter()
        gate.send(d)
        full.append(StampPin.on_at - t0)
        send.append(StampPin.on_at - t1)
    gate.close()
    report("gpio (mock): send -> pin on", send)
    report("gpio (mock): observe(read) -> pin on", full)


def bench_serial(n: int) -> None:
    emu = LcusEmulator()
    cfg = RelayConfig(type="serial", port=emu.port, pulse_s=0.001, cooldown_s=0.0)
    gate = Gate.from_config(cfg)
    gate.start()
    emu.wait_for(0)
    dec = decisions()
    send, full = [], []
    for _ in range(n):
        while gate.is_on:
            time.sleep(0.0005)
        time.sleep(0.002)
        k = len(emu.frames)
        t0 = time.monotonic()  # the emulator stamps frames with time.monotonic()
        (d,) = [x for x in dec.observe(read()) if x.action == "open"]
        t1 = time.monotonic()
        gate.send(d)
        t_on = emu.wait_for(1, after=k)[0]
        send.append(t_on - t1)
        full.append(t_on - t0)
    gate.close()
    assert not emu.errors, emu.errors
    emu.close()
    report("serial lcus (pty): send -> frame read", send)
    report("serial lcus (pty): observe -> frame read", full)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    n = ap.parse_args().n
    bench_gpio(n)
    bench_serial(n)


if __name__ == "__main__":
    main()
