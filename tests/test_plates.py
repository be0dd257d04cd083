"""Plate text: one normal form for reader, rules and decider; look-alikes; edit distance."""

from __future__ import annotations

import pytest

from agent.plates import LOOKALIKES, canonical, distance, is_plate, normalize
from agent.read.parse import parse_reads
from agent.rules import make_rule
from agent.types import Box, Detection, PlateCrop


@pytest.mark.parametrize(("text", "norm"), [
    (" ab-123 cd ", "AB123CD"),
    ("nhk552", "NHK552"),  # what the API answers
    ("AB.12_3·CD", "AB123CD"),
    ("AB/12\t3", "AB123"),
    ("", ""),
    ("- . _", ""),
])
def test_normalize_keeps_upper_case_letters_and_digits_only(text: str, norm: str) -> None:
    assert normalize(text) == norm
    assert normalize(norm) == norm  # idempotent


def test_every_lookalike_folds_onto_its_digit_and_digits_stay() -> None:
    assert LOOKALIKES == {"O": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2"}
    assert canonical("o i l b s z") == "011852"
    assert canonical("0118 52") == "011852"
    assert canonical("AB123CD") == "A8123CD" == canonical("a8-123-cd")
    assert canonical("KX52ODV") == canonical("KX520DV") != canonical("KX52QDV")


def test_distance_counts_edits_and_stops_past_the_limit() -> None:
    assert distance("AB123CD", "AB123CD") == 0
    assert distance("AB123CD", "AB124CD") == 1  # substitution
    assert distance("AB123CD", "AB12CD") == 1  # deletion
    assert distance("AB12CD", "AB123CD") == 1  # insertion
    assert distance("", "ABC") == 3
    assert distance("AB123CD", "XY999ZZ") == 7  # every character differs
    assert distance("AB123CD", "XY999ZZ", limit=2) == 3  # limit + 1
    assert distance("A", "ABCDEF", limit=1) == 2  # lengths alone exceed the limit


@pytest.mark.parametrize(("written", "ok"), [
    ("AB 123-CD", True), ("ab.12_3", True), ("A", True), ("A" * 16, True),
    ("A" * 17, False), ("", False), ("- -", False), ("AB/12", False), ("ÄB12", False),
])
def test_is_plate_accepts_letters_digits_and_separators_only(written: str, ok: bool) -> None:
    assert is_plate(written) is ok


def test_rules_and_parser_agree_on_the_same_plate() -> None:
    rule = make_rule("allow", "ab 123-cd")
    crop = PlateCrop("gate", 1, 0.0, 0.0, Detection(Box(0, 0, 100, 40), 0.9), Box(0, 0, 100, 40), b"", 1.0, 1.0)
    doc = {"results": [{"plate": "ab123cd", "score": 0.9, "box": {"xmin": 0, "ymin": 0, "xmax": 10, "ymax": 5},
                        "candidates": [{"plate": "a8123cd", "score": 0.5}]}]}
    (read,) = parse_reads(doc, crop, (100, 40))
    assert read.plate == rule.norm == "AB123CD"
    assert canonical(read.candidates[0].plate) == rule.canon
    with pytest.raises(ValueError, match="bad plate"):
        make_rule("allow", "AB/12")
