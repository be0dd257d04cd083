"""The safety rule "this read is too late to move the gate", in one place.

A read of a frame captured more than ``max_decision_age_s`` ago may be published, but never opens
the gate: the car it saw may have gone, and another may stand in its place. The reader marks such
reads ``late``, the decider marks their decisions ``late``, and the relay only moves for decisions
that pass ``moves_gate``.

Monotonic time is per boot: a crop kept on disk carries the boot id it was captured in. One from
another boot, or stored without one, is of unknown age and so always late, whatever the wall clock
says (a board without an RTC may start with a clock that is hours behind).
"""

from __future__ import annotations

from .types import Decision, PlateCrop, PlateRead


def too_late(captured_mono: float, now: float, max_age_s: float) -> bool:
    """Whether a frame captured at ``captured_mono`` is too old at ``now`` to move the gate
    (monotonic seconds). A frame exactly ``max_age_s`` old still counts as in time."""
    return now - captured_mono > max_age_s


def carried_mono(stored_boot: object, stored_mono: object, boot_id: str) -> float | None:
    """A stored monotonic capture time, if it is usable in this boot (``boot_id``); None when it was
    taken in another boot or stored without its boot: its age is unknown, so it is too late."""
    if not boot_id or stored_boot != boot_id:
        return None
    if isinstance(stored_mono, bool) or not isinstance(stored_mono, (int, float)):
        return None
    return float(stored_mono)


def crop_too_late(crop: PlateCrop, now: float, max_age_s: float) -> bool:
    """A crop known to be of unknown age stays late; otherwise its frame's age decides."""
    return crop.late or too_late(crop.mono_time, now, max_age_s)


def read_too_late(read: PlateRead, now: float, max_age_s: float) -> bool:
    """A read the reader already marked late stays late; otherwise its frame's age decides."""
    return read.late or too_late(read.mono_time, now, max_age_s)


def moves_gate(decision: Decision) -> bool:
    """The relay pulses for this decision: an "open" that was not decided late."""
    return decision.action == "open" and not decision.late


__all__ = ["carried_mono", "crop_too_late", "moves_gate", "read_too_late", "too_late"]
