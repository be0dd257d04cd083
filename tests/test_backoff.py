"""The one retry-delay formula: capped exponential with equal jitter, seeded for repeatability."""

from __future__ import annotations

import random

import pytest

from agent.backoff import backoff_s


def test_nominal_delay_doubles_from_the_first_and_stops_at_the_cap() -> None:
    top = [backoff_s(n, 0.25, 3.0, lambda: 1.0) for n in range(7)]
    assert top == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    bottom = [backoff_s(n, 0.25, 3.0, lambda: 0.0) for n in range(7)]
    assert bottom == [d / 2 for d in top]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_seeded_delays_stay_within_half_to_full_nominal_and_spread(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(12):
        nominal = min(30.0, 0.5 * 2**attempt)
        delays = [backoff_s(attempt, 0.5, 30.0, rng.random) for _ in range(200)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > nominal * 0.4  # jittered, not one value
    again = random.Random(seed)
    assert backoff_s(3, 0.5, 30.0, again.random) == backoff_s(3, 0.5, 30.0, random.Random(seed).random)


def test_huge_attempt_numbers_stay_finite_and_capped() -> None:
    assert backoff_s(10**6, 0.5, 5.0, lambda: 0.999) <= 5.0
    assert backoff_s(-3, 0.5, 5.0, lambda: 1.0) == 0.5  # no negative attempts: the first delay
