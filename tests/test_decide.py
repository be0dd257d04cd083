"""Dedupe per vehicle pass: one event per pass, at most one update, rules, stale guard, rearm."""

from __future__ import annotations

import dataclasses

from agent.config import DecisionConfig, RuleEntry, RulesConfig
from agent.decide import Decider
from agent.rules import AccessRules
from agent.types import Box, Candidate, PlateRead, Vehicle
from tests.clock import Clock


def make(allow=("AB123CD",), deny=(), **kw) -> tuple[Decider, Clock]:
    matching = {k: kw.pop(k) for k in ("match", "max_distance") if k in kw}  # [rules] keys; the rest: [decision]
    cfg = RulesConfig(allow=[RuleEntry(plate=p) for p in allow], deny=[RuleEntry(plate=p) for p in deny], **matching)
    clock = Clock()
    rules = AccessRules(cfg, clock=clock)
    rules.load()
    return Decider(DecisionConfig(**kw), rules, clock=clock, wall=lambda: 1.7e9 + clock.t), clock


def read(clock: Clock, plate: str, score: float = 0.9, *, cam: str = "gate", box=(100, 100, 200, 140),
         age: float = 0.1, cands=(), **kw) -> PlateRead:
    return PlateRead(camera_id=cam, plate=plate, score=score, dscore=kw.pop("dscore", 0.9), box=Box(*box),
                     wall_time=1.7e9 + clock.t - age, mono_time=clock.t - age,
                     candidates=tuple(Candidate(p, s) for p, s in cands), **kw)


def feed(dec: Decider, clock: Clock, reads: list[tuple[str, float]], step: float = 0.3, **kw):
    out = []
    for plate, score in reads:
        clock.t += step
        out += dec.observe(read(clock, plate, score, **kw))
    return out


def test_allowed_plate_in_ten_reads_is_one_event_then_at_most_one_update():
    dec, clock = make()
    seq = [("AB123CD", 0.75), ("A8123CD", 0.5), ("AB123CD", 0.8), ("AB123C0", 0.6), ("AB123CD", 0.95),
           ("AB123CD", 0.97), ("AB12CD", 0.4), ("AB123CD", 0.99), ("AB123CD", 0.92), ("AB123CD", 0.9)]
    out = feed(dec, clock, seq)
    assert [d.kind for d in out] == ["new", "update"]
    assert out[0].action == "open" and out[0].rule == "allow:AB123CD" and out[0].plate == "AB123CD"
    assert out[0].pass_id == out[1].pass_id and out[0].event_id != out[1].event_id
    assert out[1].read.score >= 0.95  # the update carries the better read
    clock.t += 11
    assert dec.expire() == [] and dec.stats()["active_passes"] == 0


def test_first_confident_read_emits_immediately():
    dec, clock = make()
    assert feed(dec, clock, [("AB123CD", 0.5), ("AB123CD", 0.6)]) == []  # below min_score: waits
    (d,) = feed(dec, clock, [("AB123CD", 0.8)])
    assert d.kind == "new" and d.action == "open"


def test_denied_plate_event_with_deny_action():
    dec, clock = make(deny=("XY999",))
    out = feed(dec, clock, [("XY999", 0.9)] * 5)
    assert [(d.kind, d.action, d.rule) for d in out] == [("new", "deny", "deny:XY999")]


def test_look_alike_one_char_off_does_not_open_unless_fuzzy():
    dec, clock = make()
    (d,) = feed(dec, clock, [("AB124CD", 0.95)] * 3)
    assert d.action == "none" and d.rule == ""
    dec, clock = make(match="fuzzy", max_distance=1)
    (d,) = feed(dec, clock, [("AB124CD", 0.95)] * 3)
    assert d.action == "open" and "fuzzy" in d.reason


def test_confusion_equivalent_opens():
    dec, clock = make()
    (d,) = feed(dec, clock, [("AB123CD".replace("B", "8").replace("1", "I"), 0.9)])
    assert d.action == "open" and "look-alike" in d.reason


def test_stale_read_never_opens():
    dec, clock = make(max_decision_age_s=2.0)
    clock.t += 1
    (d,) = dec.observe(read(clock, "AB123CD", age=3.0))
    assert d.late and d.action == "none" and d.rule == "allow:AB123CD" and "stale" in d.reason
    dec, clock = make()
    (d,) = dec.observe(read(clock, "AB123CD", late=True))
    assert d.late and d.action == "none"
    # a fresh read of the same pass afterwards may still open (as the one update)
    clock.t += 0.5
    (u,) = dec.observe(read(clock, "AB123CD"))
    assert (u.kind, u.action, u.late) == ("update", "open", False)


def test_a_read_exactly_max_decision_age_s_old_still_opens_a_hair_older_does_not():
    dec, clock = make(max_decision_age_s=2.0)
    (d,) = dec.observe(read(clock, "AB123CD", age=2.0))  # 1000.0 - 998.0: exactly 2 s
    assert (d.action, d.late) == ("open", False)
    dec, clock = make(max_decision_age_s=2.0)
    (d,) = dec.observe(read(clock, "AB123CD", age=2.0 + 2**-20))
    assert (d.action, d.late) == ("none", True) and "2.0 s old > max_decision_age_s 2" in d.reason


def test_stale_update_does_not_downgrade():
    dec, clock = make()
    (d,) = feed(dec, clock, [("AB123CD", 0.8)])
    assert d.action == "open"
    clock.t += 0.5
    # better reads (gain >= update_min_gain) of the same text, but stale: no "none" update after the "open"
    assert dec.observe(read(clock, "AB123CD", 0.95, late=True)) == []
    assert dec.observe(read(clock, "AB123CD", 0.97, age=6.0)) == []
    # the pass still holds its "open" and its one update: a fresh better read gets it
    (u,) = dec.observe(read(clock, "AB123CD", 0.99))
    assert (u.kind, u.action, u.late) == ("update", "open", False)
    assert dec.stats()["update"] == 1 and dec.stats()["late"] == 0


def test_vote_uses_candidates_and_update_fixes_text():
    dec, clock = make(allow=("AB123CD",))
    # first confident read misses a char; later reads agree on the allowed text
    out = feed(dec, clock, [("AB12CD", 0.8)])
    assert out[0].plate == "AB12CD" and out[0].action == "none"
    out = feed(dec, clock, [("AB123CD", 0.85, ), ("AB123CD", 0.8)], cands=[("AB123CD", 0.8), ("AB12CD", 0.3)])
    assert [(d.kind, d.plate, d.action) for d in out] == [("update", "AB123CD", "open")]


def test_rearm_same_plate_again_after_leaving():
    dec, clock = make(pass_window_s=5.0, rearm_s=30.0)
    assert len(feed(dec, clock, [("AB123CD", 0.9)] * 3)) == 1
    clock.t += 10  # left: the pass ended; back within rearm_s -> same pass, no new event
    assert [d.kind for d in feed(dec, clock, [("AB123CD", 0.9)] * 3)] == []
    clock.t += 40  # gone longer than rearm_s -> triggers again
    out = feed(dec, clock, [("AB123CD", 0.9)] * 3)
    assert [(d.kind, d.action) for d in out] == [("new", "open")]
    dec, clock = make(pass_window_s=5.0, rearm_s=0.0)
    feed(dec, clock, [("AB123CD", 0.9)])
    clock.t += 6
    assert [d.kind for d in feed(dec, clock, [("AB123CD", 0.9)])] == ["new"]


def test_rearm_is_for_the_same_plate_only():
    dec, clock = make(pass_window_s=5.0, rearm_s=60.0)
    feed(dec, clock, [("AB123CD", 0.9)] * 3)
    clock.t += 10
    # a different car one character off, soon after: its own event (and it does not open)
    out = feed(dec, clock, [("AB124CD", 0.9)] * 3)
    assert [(d.kind, d.plate, d.action) for d in out] == [("new", "AB124CD", "none")]
    clock.t += 10
    # the first car back, first read with a look-alike, then a low-score start: still no new event
    assert feed(dec, clock, [("A8123CD", 0.9), ("AB123CD", 0.9)]) == []
    clock.t += 10
    assert feed(dec, clock, [("AB123CD", 0.5), ("AB123CD", 0.9)]) == []
    clock.t += 10
    # back again, first read truncated (a new pass at first): adopted once the vote settles
    out = feed(dec, clock, [("AB123C", 0.5), ("AB123CD", 0.9), ("AB123CD", 0.9)])
    assert out == [] and dec.stats()["rearm_suppressed"] == 3


def test_two_vehicles_at_once_are_two_passes():
    dec, clock = make(allow=("AB123CD", "KL456MN"))
    out = []
    for _ in range(4):
        out += feed(dec, clock, [("AB123CD", 0.9)])
        out += feed(dec, clock, [("KL456MN", 0.9)], box=(400, 100, 500, 140))
    assert sorted(d.plate for d in out) == ["AB123CD", "KL456MN"] and len({d.pass_id for d in out}) == 2


def test_cameras_are_separate():
    dec, clock = make()
    out = feed(dec, clock, [("AB123CD", 0.9)], cam="a") + feed(dec, clock, [("AB123CD", 0.9)], cam="b")
    assert [d.camera_id for d in out] == ["a", "b"]


def test_low_confidence_pass_gets_one_none_event_when_it_ends():
    dec, clock = make()
    assert feed(dec, clock, [("AB123CD", 0.4)] * 4) == []
    clock.t += 11
    (d,) = dec.expire()
    assert d.kind == "new" and d.action == "none" and "min_score" in d.reason


def test_min_dscore_and_require_vehicle_drop_reads():
    dec, clock = make(require_vehicle=True)
    assert dec.observe(read(clock, "AB123CD", dscore=0.2)) == []
    assert dec.observe(read(clock, "AB123CD")) == []
    assert dec.stats()["dropped_dscore"] == 1 and dec.stats()["dropped_vehicle"] == 1
    (d,) = dec.observe(read(clock, "AB123CD", vehicle=Vehicle("Sedan", 0.8)))
    assert d.action == "open"
    clock.t += 11
    assert dec.expire() == []


def test_detector_only_reads_one_event_per_pass():
    dec, clock = make()
    out = []
    for i in range(8):  # one plate moving right, then a second one elsewhere
        out += feed(dec, clock, [("", 0.0)], box=(100 + 20 * i, 100, 200 + 20 * i, 140))
    out += feed(dec, clock, [("", 0.0)], box=(900, 600, 1000, 640))
    assert [(d.kind, d.action, d.plate) for d in out] == [("new", "none", "")] * 2
    clock.t += 11  # same place after the window: a new pass
    assert len(feed(dec, clock, [("", 0.0)])) == 1


def test_decision_fields():
    dec, clock = make()
    (d,) = dec.observe(dataclasses.replace(read(clock, "ab123cd"), region="gb"))
    assert d.read.region == "gb" and d.decided_at == 1.7e9 + clock.t and not d.late
    assert len(d.pass_id) == 16 and len(d.event_id) == 32


# ---------------------------------------------------------------- direction and unread passes


def crop_going(clock: Clock, direction: str, track_id: int = 1):
    from agent.types import Detection, PlateCrop

    box = Box(100, 100, 200, 140)
    return PlateCrop("gate", 1, 1.7e9 + clock.t, clock.t, Detection(box, 0.8), box, b"jpeg", 500.0, 0.5,
                     track_id=track_id, direction=direction)


def test_open_for_approaching_opens_only_for_an_approaching_vehicle():
    dec, clock = make(allow=("AB123CD", "XY987ZW", "KL456MN"), open_for="approaching")
    actions = []
    for plate, direction in (("AB123CD", "approaching"), ("XY987ZW", "leaving"), ("KL456MN", "unknown")):
        clock.t += 100  # separate passes
        (d,) = dec.observe(read(clock, plate, crop=crop_going(clock, direction)))
        actions.append((d.action, d.direction))
    assert actions == [("open", "approaching"), ("none", "leaving"), ("none", "unknown")]
    assert dec.stats()["not_approaching"] == 2


def test_open_for_any_keeps_opening_for_a_leaving_vehicle_and_the_event_says_so():
    from agent.events import decision_payload

    dec, clock = make()
    (d,) = dec.observe(read(clock, "AB123CD", crop=crop_going(clock, "leaving")))
    assert d.action == "open" and decision_payload(d)["direction"] == "leaving"


def test_an_unread_pass_is_one_event_that_never_opens():
    from agent.events import decision_payload
    from agent.types import PassEnd

    dec, clock = make()
    end = PassEnd("gate", 7, "approaching", 2, "no plate read in 2 upload(s)", crop_going(clock, "approaching", 7))
    (d,) = dec.unread(end)
    doc = decision_payload(d)
    assert (doc["type"], doc["action"], doc["plate"], doc["direction"]) == ("unread", "none", "", "approaching")
    assert "no plate read" in doc["reason"] and dec.stats()["unread"] == 1
    clock.t += 60
    assert dec.expire() == []  # nothing more for that pass
