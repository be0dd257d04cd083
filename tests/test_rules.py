"""Access rules: normalisation, OCR look-alikes, fuzzy opt-in, deny beats allow, schedules, CSV reload."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from agent.config import RuleEntry, RulesConfig
from agent.errors import ConfigError
from agent.plates import canonical, distance, normalize
from agent.rules import AccessRules, parse_schedule


def rules(match: str = "confusions", allow=("AB123CD",), deny=(), **kw) -> AccessRules:
    cfg = RulesConfig(allow=[RuleEntry(plate=p, label="staff") for p in allow],
                      deny=[RuleEntry(plate=p) for p in deny], match=match, **kw)
    r = AccessRules(cfg)
    r.load()
    return r


def wall(y=2024, mo=5, d=6, h=12, mi=0) -> float:  # 2024-05-06 is a Monday
    return dt.datetime(y, mo, d, h, mi).timestamp()


def test_normalize_and_canonical():
    assert normalize(" ab-123 cd ") == "AB123CD"
    assert canonical("OIL BSZ") == "0118 52".replace(" ", "")
    assert distance("AB123CD", "AB124CD") == 1
    assert distance("AB123CD", "XY999ZZ", limit=2) == 3


def test_exact_match_opens_and_names_rule():
    m = rules().check("ab 123-cd", "gate")
    assert (m.action, m.rule) == ("open", "allow:AB123CD")
    assert "exact" in m.reason and "staff" in m.reason


def test_confusion_equivalent_opens_by_default_but_not_with_exact():
    assert rules().check("A8I23CD", "gate").action == "open"  # B->8, 1->I
    assert rules().check("AB1Z3CD", "gate").reason.startswith("OCR look-alike")
    assert rules(match="exact").check("A8123CD", "gate").action == "none"


def test_one_char_off_needs_fuzzy():
    assert rules().check("AB124CD", "gate").action == "none"
    m = rules(match="fuzzy", max_distance=1).check("AB124CD", "gate")
    assert m.action == "open" and "fuzzy" in m.reason and "distance 1" in m.reason
    assert rules(match="fuzzy", max_distance=1).check("AB125CE", "gate").action == "none"


def test_deny_beats_allow():
    r = rules(allow=("AB123CD",), deny=("AB123CD",))
    m = r.check("AB123CD", "gate")
    assert (m.action, m.rule) == ("deny", "deny:AB123CD")
    # deny wins even when its match is looser than the allow's
    m = rules(match="fuzzy", allow=("AB123CD",), deny=("AB123CE",)).check("AB123CD", "gate")
    assert m.action == "deny"


def test_unknown_plate_is_none():
    m = rules().check("ZZ999", "gate")
    assert (m.action, m.rule, m.reason) == ("none", "", "no matching rule")


def test_schedule_windows():
    (w,) = parse_schedule("Mon-Fri 07:00-19:00")
    assert w.contains(dt.datetime(2024, 5, 6, 7, 0)) and not w.contains(dt.datetime(2024, 5, 6, 19, 0))
    assert not w.contains(dt.datetime(2024, 5, 11, 12, 0))  # Saturday
    (n,) = parse_schedule("Fri 22:00-06:00")  # wraps midnight
    assert n.contains(dt.datetime(2024, 5, 11, 5, 0)) and not n.contains(dt.datetime(2024, 5, 12, 5, 0))
    with pytest.raises(ValueError):
        parse_schedule("Funday 07:00-08:00")


def test_schedule_validity_and_cameras(tmp_path: Path):
    f = tmp_path / "rules.csv"
    f.write_text(
        "plate,label,list,valid_from,valid_until,schedule,cameras\n"
        "AB123CD,cleaner,allow,,,Mon-Fri 07:00-19:00,gate\n"
        "TEMP1,visitor,allow,2024-05-01,2024-05-06,,\n"
        "FRONT1,,allow,,,,front back\n"
    )
    r = AccessRules(RulesConfig(file=str(f)), synchronised=lambda: True)
    r.load()
    assert r.check("AB123CD", "gate", wall(h=8)).action == "open"
    m = r.check("AB123CD", "gate", wall(h=20))
    assert m.action == "none" and "outside schedule" in m.reason and m.rule == "allow:AB123CD"
    assert r.check("AB123CD", "other", wall(h=8)).action == "none"
    assert r.check("TEMP1", "gate", wall(d=6, h=23)).action == "open"  # until date is inclusive
    assert "expired" in r.check("TEMP1", "gate", wall(d=7)).reason
    assert "not valid yet" in r.check("TEMP1", "gate", wall(d=1, mo=4)).reason
    assert r.check("FRONT1", "back").action == "open" and r.check("FRONT1", "gate").action == "none"


def test_dated_rules_wait_for_a_synchronised_clock_allow_off_deny_on(tmp_path: Path):
    f = tmp_path / "rules.csv"
    f.write_text(
        "plate,label,list,valid_from,valid_until,schedule,cameras\n"
        "AB123CD,cleaner,allow,,,Mon-Fri 07:00-19:00,\n"
        "TEMP1,visitor,allow,2024-05-01,2024-05-06,,\n"
        "PLAIN1,,allow,,,,\n"
        "BANNED1,,allow,,,,\n"
        "BANNED1,,deny,2024-05-01,2024-05-06,,\n"
    )
    synced = [False]
    r = AccessRules(RulesConfig(file=str(f)), synchronised=lambda: synced[0])
    r.load()
    m = r.check("AB123CD", "gate", wall(h=8))
    assert m.action == "none" and "clock is not synchronised" in m.reason and m.rule == "allow:AB123CD"
    assert r.check("TEMP1", "gate", wall(d=6)).action == "none"
    assert r.check("PLAIN1", "gate", wall(d=6)).action == "open"  # plain allow rules stay in force
    assert r.check("BANNED1", "gate", wall(d=20)).action == "deny"  # a dated deny is kept: fail closed
    assert r.stats()["dated"] == 3
    synced[0] = True
    assert r.check("AB123CD", "gate", wall(h=8)).action == "open"
    assert r.check("TEMP1", "gate", wall(d=6)).action == "open"
    assert r.check("BANNED1", "gate", wall(d=20)).action == "open"  # its ban has ended


def test_csv_reload_on_mtime_change_and_on_request(tmp_path: Path):
    f = tmp_path / "rules.csv"
    f.write_text("AB123CD,,allow\n")
    t = [0.0]
    r = AccessRules(RulesConfig(file=str(f), reload_check_s=5.0), clock=lambda: t[0])
    r.load()
    assert r.check("AB123CD", "gate").action == "open"
    f.write_text("AB123CD,,deny\n")
    os.utime(f, ns=(1, 10**18))
    t[0] = 1.0  # before reload_check_s: still the old rules
    assert r.check("AB123CD", "gate").action == "open"
    t[0] = 6.0
    assert r.check("AB123CD", "gate").action == "deny"
    assert r.stats()["reloads"] == 1
    f.write_text("XY1,,allow\n")
    r.request_reload()  # SIGHUP path: applies at the next check, whatever the time
    assert r.check("XY1", "gate").action == "open"


def test_broken_reload_keeps_rules_and_broken_start_fails(tmp_path: Path):
    f = tmp_path / "rules.csv"
    f.write_text("AB123CD,,allow\n")
    r = AccessRules(RulesConfig(file=str(f)))
    r.load()
    f.write_text("AB123CD,,maybe\n")
    assert r.reload() is False
    assert r.check("AB123CD", "gate").action == "open" and r.stats()["reload_errors"] == 1
    with pytest.raises(ConfigError, match=r"rules.csv:1"):
        AccessRules(RulesConfig(file=str(f))).load()
    with pytest.raises(ConfigError):
        AccessRules(RulesConfig(file=str(tmp_path / "missing.csv"))).load()


def test_file_loaded_on_first_check_when_load_was_not_called(tmp_path: Path):
    f = tmp_path / "rules.csv"
    f.write_text("AB123CD,,allow\n")
    assert AccessRules(RulesConfig(file=str(f))).check("AB123CD", "gate").action == "open"
