"""Per-stage time sums: calls, wall and CPU per stage, from injected clocks."""

from __future__ import annotations

import pytest

from agent.stagetime import StageTimes


class Ticks:
    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_each_stage_sums_its_calls_wall_and_cpu() -> None:
    times = StageTimes(clock=Ticks(0.010), cpu=Ticks(0.002))
    for _ in range(3):
        with times.measure("motion"):
            pass
    with pytest.raises(ValueError), times.measure("crop"):
        raise ValueError("a failing stage is still counted")
    snap = times.snapshot()
    assert snap["motion"] == {"calls": 3, "ms": 30.0, "cpu_ms": 6.0}
    assert snap["crop"] == {"calls": 1, "ms": 10.0, "cpu_ms": 2.0}
    assert snap["since_s"] == pytest.approx(0.1)  # 1 tick at start, 2 per call (4 calls), 1 now
