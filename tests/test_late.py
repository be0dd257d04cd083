"""The one "too late to move the gate" rule, at its boundaries."""

from __future__ import annotations

import dataclasses

from agent.late import carried_mono, crop_too_late, moves_gate, read_too_late, too_late
from agent.types import Box, Decision, Detection, PlateCrop, PlateRead


def test_too_late_only_strictly_past_the_limit() -> None:
    assert not too_late(100.0, 105.0, 5.0)  # exactly max age: still in time
    assert too_late(100.0, 105.0 + 2**-30, 5.0)
    assert not too_late(100.0, 104.999, 5.0)
    assert not too_late(100.0, 100.0, 5.0)
    assert not too_late(100.0, 99.0, 5.0)  # captured "after now" (reordered threads): not late


def plate_read(mono: float, late: bool = False) -> PlateRead:
    return PlateRead("gate", "AB123CD", 0.9, 0.9, Box(0, 0, 10, 10), 1.7e9, mono, late=late)


def test_a_read_marked_late_stays_late_however_young() -> None:
    assert not read_too_late(plate_read(100.0), 105.0, 5.0)
    assert read_too_late(plate_read(100.0), 105.5, 5.0)
    assert read_too_late(plate_read(105.0, late=True), 105.0, 5.0)


def test_a_stored_capture_time_counts_only_in_its_own_boot() -> None:
    assert carried_mono("boot-a", 12.5, "boot-a") == 12.5
    assert carried_mono("boot-b", 12.5, "boot-a") is None  # another boot: age unknown
    for boot, mono in ((None, 12.5), ("boot-a", None), ("boot-a", "12.5"), ("boot-a", True)):
        assert carried_mono(boot, mono, "boot-a") is None  # stored without it, or garbled
    assert carried_mono("", 12.5, "") is None  # no boot id at all never matches


def test_a_crop_of_unknown_age_is_late_however_young() -> None:
    crop = PlateCrop("gate", 1, 1.7e9, 100.0, Detection(Box(0, 0, 10, 10), 0.9), Box(0, 0, 10, 10), b"", 1.0, 1.0)
    assert not crop_too_late(crop, 100.0, 5.0) and crop_too_late(crop, 105.5, 5.0)
    assert crop_too_late(dataclasses.replace(crop, late=True), 100.0, 5.0)


def test_only_an_open_decided_in_time_moves_the_gate() -> None:
    d = Decision("e1", "p1", "new", "gate", "AB123CD", plate_read(100.0), "open", "allow:AB123CD", "exact match",
                 False, 1.7e9)
    assert moves_gate(d)
    assert not moves_gate(dataclasses.replace(d, late=True))
    assert not moves_gate(dataclasses.replace(d, action="deny"))
    assert not moves_gate(dataclasses.replace(d, action="none"))
