"""Clock faults through the whole agent and its outboxes: a crop parked in another boot re-read while
the wall clock is behind, dated and scheduled rules on a clock that is not synchronised, and outbox
items parked before NTP stepped the clock forward. Boot id, clock probe and clocks are injected."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import StorageConfig
from agent.events import JsonLinesSink
from agent.read.outbox import FILENAME, Outbox
from agent.timebase import Timebase
from tests.clock import Clock
from tests.faults.conftest import Running, agent_config, wait_until
from tests.prserver import PRServer
from tests.read.conftest import make_crop

pytestmark = pytest.mark.faults

PLATE = "AB12 CDE"
BEHIND_S = 40 * 60  # the clock after the power cut is 40 minutes behind the time the crop was taken


def park_crop(state: Path, row: str) -> None:
    """One crop of the allowed car in the reader's outbox, as an earlier run left it."""
    box = Outbox(state / FILENAME)
    box.put(make_crop(0, wall_time=time.time() + BEHIND_S, mono_time=time.monotonic()))
    box.close()
    if row == "this boot":
        return
    db = sqlite3.connect(state / FILENAME)
    with db:
        (meta,) = db.execute("SELECT meta FROM outbox").fetchone()
        m = json.loads(meta)
        if row == "another boot":  # its monotonic time is as fresh as a time of this boot can look
            m["boot_id"] = "4a1d7c52-0000-4000-8000-000000000000"
        else:  # written before rows had a boot id: of unknown age
            m.pop("boot_id", None)
            m.pop("mono_time", None)
        db.execute("UPDATE outbox SET meta = ?", (json.dumps(m),))
    db.close()


def gate_agent(tmp_path: Path, server: PRServer, start_agent: Callable[..., Running], rule: dict[str, Any],
               sections: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Running, io.StringIO, MockFactory]:
    server.default_text = PLATE.replace(" ", "")
    cfg = agent_config(
        tmp_path,
        cameras=[{"id": "gate", "source": "/dev/null", "type": "file"}],
        reader={"type": "sdk", "url": server.url, "retries": 0, "rate_per_s": 0.0, "usage_poll_s": 0.0},
        rules={"allow": [{"plate": PLATE, **rule}]},
        decision={"max_decision_age_s": 30.0, "pass_window_s": 0.5},  # a crop parked just now is in time
        relay={"type": "gpio", "pin": "17", "pulse_s": 0.2, "cooldown_s": 0.0},
        **(sections or {}),
    )
    out, factory = io.StringIO(), MockFactory()
    agent = start_agent(cfg, extra_sinks=[JsonLinesSink(out)], relay_kw={"pin_factory": factory}, **kwargs)
    return agent, out, factory


def decided(out: io.StringIO) -> list[dict[str, Any]]:
    """The events once the pass is decided (the read came back and the pass window closed)."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


def pulses(factory: MockFactory) -> int:
    return [s.state for s in factory.pin(17).states].count(True)


@pytest.mark.parametrize(("row", "opens"), [("another boot", False), ("no boot id", False), ("this boot", True)])
def test_crop_parked_in_another_boot_never_opens_however_fresh_the_clock_says_it_is(
        tmp_path: Path, pr_sdk_server: PRServer, start_agent, row: str, opens: bool) -> None:
    park_crop(tmp_path / "state", row)
    agent, out, factory = gate_agent(tmp_path, pr_sdk_server, start_agent, {})
    (event,) = wait_until(lambda: decided(out), what="the parked crop's event")
    r = wait_until(lambda: (x := agent.doc()["reader"])["outbox"]["depth"] == 0 and x, what="the outbox drained")
    assert event["plate"] == PLATE.replace(" ", "") and event["rule"] == "allow:AB12CDE"  # the rule matches
    assert event["late"] is not opens and r["late_reads"] == (0 if opens else 1)
    assert event["action"] == ("open" if opens else "none"), event["reason"]
    if opens:
        wait_until(lambda: pulses(factory) == 1, what="the pulse of a crop parked in this boot")
    else:
        agent.close()  # everything delivered is acted on before close returns
        assert pulses(factory) == 0, f"a crop from {row} opened the gate"


def tomorrow() -> str:
    return (dt.date.today() + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize("rule", [{"valid_until": "TOMORROW"}, {"schedule": "Mon-Sun 00:00-24:00"}],
                         ids=["valid_until", "schedule"])
@pytest.mark.parametrize("source", ["", "kernel"], ids=["unsynchronised", "synchronised"])
def test_dated_and_scheduled_rules_wait_for_a_synchronised_clock(
        tmp_path: Path, pr_sdk_server: PRServer, start_agent, rule: dict[str, str], source: str) -> None:
    # the clock is 3 days behind: the rule expired in truth, and looks valid until tomorrow
    rule = {k: tomorrow() if v == "TOMORROW" else v for k, v in rule.items()}
    park_crop(tmp_path / "state", "this boot")
    agent, out, factory = gate_agent(tmp_path, pr_sdk_server, start_agent, rule,
                                     timebase=Timebase(clock_source=lambda: source))
    (event,) = wait_until(lambda: decided(out), what="the car's event")
    clock = agent.doc()["clock"]
    assert clock == {"synchronised": bool(source), "source": source or None, "dated_rules": 1,
                     "dated_rules_active": bool(source)}
    assert ("plate_agent_clock_synchronised " + ("1" if source else "0")) in agent.metrics()
    if source:
        assert event["action"] == "open" and not event["late"]
        wait_until(lambda: pulses(factory) == 1, what="the pulse")
    else:
        assert event["action"] == "none" and "clock is not synchronised" in event["reason"]
        agent.close()
        assert pulses(factory) == 0


def test_a_clock_the_config_trusts_counts_without_ntp(tmp_path: Path, pr_sdk_server: PRServer,
                                                      start_agent) -> None:
    park_crop(tmp_path / "state", "this boot")
    agent, out, factory = gate_agent(tmp_path, pr_sdk_server, start_agent, {"valid_until": tomorrow()},
                                     {"clock": {"trusted": True}}, timebase=Timebase(clock_source=lambda: ""))
    (event,) = wait_until(lambda: decided(out), what="the car's event")
    assert event["action"] == "open" and agent.doc()["clock"]["source"] == "config"
    wait_until(lambda: pulses(factory) == 1, what="the pulse")


def test_outbox_items_parked_before_ntp_sync_survive_the_clock_step(tmp_path: Path) -> None:
    # booted with a saved clock 3 days behind; NTP steps it forward past outbox_max_age_s (1 day)
    wall, mono = Clock(1_000_000.0), Clock(50.0)
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_age_s=86400.0), wall=wall, mono=mono)
    for i in range(3):
        box.put(make_crop(i, wall_time=wall.t, mono_time=mono.t))
        mono.t += 1.0
        wall.t += 1.0
    wall.t += 3 * 86400.0
    mono.t += 5.0
    head = box.peek()
    assert head is not None and head[1].frame_seq == 0 and box.depth() == 3 and box.dropped == 0
    assert box.oldest_age_s() == pytest.approx(8.0)  # monotonic: the items are seconds old
    mono.t += 86400.0  # a day in this boot: now they are too old
    assert box.peek() is None and box.dropped == 3


def test_outbox_ages_across_a_reboot_use_the_wall_clock_only_when_synchronised(tmp_path: Path) -> None:
    path, day = tmp_path / "o.sqlite3", 86400.0
    wall, mono, boot, synced = Clock(1_000_000.0), Clock(50.0), ["a"], [False]

    def reboot(boot_id: str, wall_t: float) -> Outbox:
        boot[0], synced[0], wall.t, mono.t = boot_id, False, wall_t, 5.0
        return Outbox(path, StorageConfig(outbox_max_age_s=day), wall=wall, mono=mono, boot_id=lambda: boot[0],
                      synchronised=lambda: synced[0])

    first = reboot("a", 1_000_000.0)
    first.put(make_crop(0))  # before NTP, and no NTP in this boot: a stamp of unknown worth
    first.close()

    second = reboot("b", 900_000.0)  # the saved clock is behind
    assert seqs(second) == [0] and second.dropped == 0  # of unknown age: counted from now
    mono.t += 60.0
    synced[0], wall.t = True, 1_000_000.0 + 3 * day  # NTP steps the clock 3 days forward
    second.put(make_crop(1))
    assert seqs(second) == [0, 1] and second.dropped == 0  # the step dropped nothing
    stamp = wall.t
    second.close()

    third = reboot("c", 900_000.0)  # behind again, not synchronised: ages unknown, nothing dropped
    assert seqs(third) == [0, 1] and third.dropped == 0
    synced[0], wall.t = True, stamp + day - 30.0  # item 0 was seen 60 s before item 1 was put
    assert seqs(third) == [1] and third.dropped == 1  # true wall ages now: 0 is a day and 30 s old
    mono.t += 31.0  # carried into this boot's monotonic time: item 1 turns a day old
    assert seqs(third) == [] and third.dropped == 2


def seqs(box: Outbox) -> list[int]:
    """The frame numbers of the crops waiting, oldest first (after the age bound is applied)."""
    return [item.meta["frame_seq"] for item in box.store.pending()]
