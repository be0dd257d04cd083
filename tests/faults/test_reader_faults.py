"""Reader faults through the whole agent (drawn cars, real pipeline, contract server): an outage
while vehicles pass, a 429 storm, a bad token, hostile answers and a full outbox."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.events import JsonLinesSink
from tests.faults.conftest import Running, agent_config, wait_until
from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer

pytestmark = pytest.mark.faults

CARS = ("AB12 CDE", "XX99 XXX")  # allowed, denied
FAST_READER = {"retries": 1, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "timeout_connect_s": 0.5,
               "timeout_read_s": 0.5, "rate_per_s": 0.0, "usage_poll_s": 0.0}


def reader_agent(tmp_path: Path, clip: Path, server: PRServer, start_agent: Callable[..., Running],
                 reader: dict[str, Any] | None = None, **sections: Any) -> tuple[Running, io.StringIO, MockFactory]:
    cfg = agent_config(
        tmp_path,
        cameras=[{"id": "gate", "source": str(clip), "type": "file", "fps_max": 15.0}],
        reader={"type": "sdk", "url": server.url, **FAST_READER, **(reader or {})},
        # reads older than 1 s never open the gate: an outage of a few seconds makes every read late
        rules={"allow": [{"plate": "AB12 CDE"}], "deny": [{"plate": "XX99 XXX"}]},
        decision={"pass_window_s": 1.5, "max_decision_age_s": 1.0},
        relay={"type": "gpio", "pin": "17", "pulse_s": 0.2, "cooldown_s": 0.0},
        **sections,
    )
    out, factory = io.StringIO(), MockFactory()
    agent = start_agent(cfg, extra_sinks=[JsonLinesSink(out)], relay_kw={"pin_factory": factory})
    return agent, out, factory


def events(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def clip_done(agent: Running) -> bool:
    return all(c.capture.ended for c in agent.service.parts.cameras)


def all_read(agent: Running) -> dict[str, Any] | None:
    """The reader's status once every crop the pipeline handed over has been read."""
    r = agent.doc()["reader"]
    uploads = agent.service.parts.camera("gate").pipeline.counters["uploads"]
    done = clip_done(agent) and r["outbox"]["depth"] == 0 and r["queued"] == 0 and r["crops_read"] == uploads
    return r if done else None


@pytest.mark.parametrize("outage", ["refused", "502", "timeout"])
def test_outage_while_cars_pass_every_read_delivered_and_no_late_opening(
        tmp_path: Path, clips, pr_sdk_server: PRServer, start_agent, outage: str) -> None:
    server = pr_sdk_server
    server.texts.extend(p.replace(" ", "") for p in CARS)
    if outage == "refused":
        server.stop_listening()
    else:
        server.outage = {"502": "502", "timeout": "slow"}[outage]
        server.slow_s = 60.0  # answers given up on stay unsent (and take no plate text) until close
    agent, out, factory = reader_agent(tmp_path, clips(CARS), server, start_agent)

    code, doc = wait_until(lambda: (s := agent.status())[1]["reader"]["state"] != "ok" and s,
                           what="the outage on /status")
    assert code == 503 and doc["reader"]["state"] == "unavailable" and doc["reader"]["reachable"] is False
    assert doc["reader"]["last_error"]
    wait_until(lambda: clip_done(agent), what="both cars passed")
    # at least one crop per car waits
    wait_until(lambda: agent.doc()["reader"]["outbox"]["depth"] >= len(CARS), what="a crop per car parked",
               detail=lambda: (agent.doc()["reader"], agent.service.parts.camera("gate").pipeline.counters))
    assert agent.service.watchdog.healthy()

    server.outage = None
    server.resume()
    r = wait_until(lambda: all_read(agent), what="the outbox drained")
    assert r["dropped"] == {} and r["late_reads"] == r["reads"] >= len(CARS)
    wait_until(lambda: agent.status()[0] == 200, what="200 after the outage")
    got = wait_until(lambda: (e := events(out)) and {x["plate"] for x in e} >= {"AB12CDE", "XX99XXX"} and e,
                     what="an event for each car")
    assert all(e["late"] for e in got)
    assert [s.state for s in factory.pin(17).states].count(True) == 0  # no late gate opening


def test_429_storm_is_waited_out_without_hammering(tmp_path: Path, clips, pr_sdk_server: PRServer,
                                                   start_agent) -> None:
    server = pr_sdk_server
    server.outage = "429"  # "Expected available in 1 second", for every lookup
    agent, out, _ = reader_agent(tmp_path, clips(CARS), server, start_agent)
    t0 = time.monotonic()
    r = wait_until(lambda: (x := agent.doc()["reader"])["rate_limited"] and x["throttled_total"] >= 3 and x,
                   what="rate_limited on /status")
    assert r["state"] == "ok"  # throttled is slow, not broken
    wait_until(lambda: clip_done(agent), what="both cars passed")
    storm_s = time.monotonic() - t0
    during = len(server.lookups())
    server.outage = None
    # the server's hint is 1 s: at most about one attempt per second, never a burst
    assert during <= storm_s * 1.0 + 3, (during, storm_s)
    at = [x.at for x in server.lookups()[:during]]
    assert min(b - a for a, b in zip(at, at[1:], strict=False)) >= 0.9
    r = wait_until(lambda: all_read(agent), what="every crop read after the storm")
    assert r["dropped"] == {} and r["reads"] >= len(CARS)
    assert "plate_agent_reader_throttled_total" in agent.metrics()


def test_bad_token_pauses_uploads_with_a_clear_status(tmp_path: Path, clips, monkeypatch,
                                                     start_agent) -> None:
    wrong = "wrong-token-7b1e2d"
    monkeypatch.setenv("PLATE_RECOGNIZER_TOKEN", wrong)
    with PRServer(token=PR_TOKEN) as server:
        agent, _, _ = reader_agent(tmp_path, clips(CARS), server, start_agent,
                                   reader={"type": "cloud", "forbidden_backoff_s": 2.0})
        code, doc = wait_until(lambda: (s := agent.status())[1]["reader"]["state"] != "ok" and s,
                               what="the 403 on /status")
        assert code == 503
        r = doc["reader"]
        assert r["state"] == "forbidden" and r["forbidden_until"] and "forbidden" in r["last_error"]
        t0, n0 = time.monotonic(), len(server.lookups())
        wait_until(lambda: clip_done(agent), what="both cars passed")
        time.sleep(max(0.0, 4.5 - (time.monotonic() - t0)))
        took, n = time.monotonic() - t0, len(server.lookups()) - n0
        assert n <= took / 2.0 + 1, (n, took)  # one probe per forbidden_backoff_s, however many cars
        doc = agent.doc()
        assert doc["reader"]["outbox"]["depth"] >= 1  # parked, read once the token is fixed
        assert wrong not in json.dumps(doc) and wrong not in agent.metrics()


@pytest.mark.parametrize("fault", ["huge", "deep", "types", "badutf8"])  # NaN, broken JSON: tests/read
def test_hostile_answer_drops_one_crop_and_the_agent_goes_on(tmp_path: Path, clips, pr_sdk_server: PRServer,
                                                            start_agent, fault: str) -> None:
    server = pr_sdk_server
    server.faults.append(fault)  # the first lookup only
    server.texts.extend(p.replace(" ", "") for p in CARS)
    agent, out, _ = reader_agent(tmp_path, clips(CARS), server, start_agent)
    r = wait_until(lambda: (x := agent.doc()["reader"])["errors"].get("bad_response")
                   and x["dropped"].get("bad_response") and x, what="the bad answer counted and its crop dropped")
    assert r["errors"] == {"bad_response": 1} and r["dropped"] == {"bad_response": 1}
    assert r["state"] == "ok" and agent.service.watchdog.healthy()
    # the next car is read normally: the thread survived the answer
    wait_until(lambda: any(e["plate"] == "XX99XXX" for e in events(out)), what="the next car read")


def test_outbox_cap_drops_the_oldest_counts_and_the_agent_lives(tmp_path: Path, clips, pr_sdk_server: PRServer,
                                                               start_agent) -> None:
    server = pr_sdk_server
    server.stop_listening()
    cars = ("AB12 CDE", "XX99 XXX", "KX52 ODV")
    agent, _, _ = reader_agent(tmp_path, clips(cars), server, start_agent,
                               storage={"outbox_max_items": 2})
    wait_until(lambda: clip_done(agent), what="three cars passed")
    uploads = agent.service.parts.camera("gate").pipeline.counters["uploads"]
    r = wait_until(lambda: (x := agent.doc()["reader"])["queued"] == 0 and sum(x["parked"].values()) == uploads
                   and x, what="every crop parked")
    assert uploads >= 3 and r["outbox"]["depth"] == 2
    assert sum(r["parked"].values()) == uploads == r["outbox"]["evicted"] + r["outbox"]["depth"]
    assert "plate_agent_reader_outbox_evicted_total" in agent.metrics()
    assert agent.service.watchdog.healthy() and all(t.is_alive() for t in agent.service.parts.threads)

    server.resume()
    r = wait_until(lambda: (x := agent.doc()["reader"])["outbox"]["depth"] == 0 and x["crops_read"] == 2 and x,
                   what="the two newest read")
    assert agent.status()[0] == 200
