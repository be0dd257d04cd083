"""A settable clock for the ``clock=`` / ``wall=`` / ``mono=`` seams: tests move ``t``, nothing sleeps."""

from __future__ import annotations


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
