"""The safety rule "this read is too late to move the gate", in one place.

A read of a frame captured more than ``max_decision_age_s`` ago may be published, but never opens
the gate: the car it saw may have gone, and another may stand in its place. The reader marks such
reads ``late``, the decider marks their decisions ``late``, and the relay only moves for decisions
that pass ``moves_gate``.
"""

from __future__ import annotations

from .types import Decision, PlateRead


def too_late(captured_mono: float, now: float, max_age_s: float) -> bool:
    """Whether a frame captured at ``captured_mono`` is too old at ``now`` to move the gate
    (monotonic seconds). A frame exactly ``max_age_s`` old still counts as in time."""
    return now - captured_mono > max_age_s


def read_too_late(read: PlateRead, now: float, max_age_s: float) -> bool:
    """A read the reader already marked late stays late; otherwise its frame's age decides."""
    return read.late or too_late(read.mono_time, now, max_age_s)


def moves_gate(decision: Decision) -> bool:
    """The relay pulses for this decision: an "open" that was not decided late."""
    return decision.action == "open" and not decision.late


__all__ = ["moves_gate", "read_too_late", "too_late"]
