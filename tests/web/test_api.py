"""The JSON API over real HTTP on loopback: filters and paging, crops by id only, a plate's
history, usage, rules written atomically and in force at once, bounded requests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.history import query as q
from tests.history.events import crop, decision
from tests.web.client import Api

JPEG = b"\xff\xd8crop\xff\xd9"


@pytest.fixture
def api(tmp_path: Path):
    a = Api(tmp_path)
    yield a
    a.close()


def fill(api: Api) -> list:
    """120 events: 3 cameras, 4 plates, 3 actions, 10 unread passes, an hour apart."""
    t0 = time.mktime((2026, 11, 1, 0, 0, 0, 0, 0, -1))
    out = []
    for i in range(120):
        kind = "unread" if i % 12 == 0 else "new"
        plate = "" if kind == "unread" else ("AB123CD", "XY999ZZ", "KX52ODV", "AB12")[i % 4]
        out.append(decision(plate, camera=("gate", "side", "back")[i % 3], action=("open", "deny", "none")[i % 3],
                            kind=kind, wall=t0 + i * 3600, jpeg=JPEG))
    api.store.write(out)
    return out


def test_events_filter_and_page(api: Api):
    sent = fill(api)
    c = api.client
    page = c.get("/api/events").json()
    assert len(page["events"]) == q.DEFAULT_PAGE and page["events"][0]["event_id"] == sent[-1].event_id
    seen, path = [], "/api/events?limit=33"
    while True:  # every event once, newest first, by the cursor
        page = c.get(path).json()
        seen += [e["event_id"] for e in page["events"]]
        if page["next"] is None:
            break
        path = f"/api/events?limit=33&before={page['next']}"
    assert seen == [d.event_id for d in reversed(sent)]
    by = lambda query: [e["event_id"] for e in c.get("/api/events?limit=100&" + query).json()["events"]]  # noqa: E731
    assert set(by("plate=ab12")) == {d.event_id for d in sent if "AB12" in d.plate}  # contains, normalised
    assert set(by("plate=ab%20123%20cd")) == {d.event_id for d in sent if d.plate == "AB123CD"}
    assert set(by("camera=side&action=deny")) == {d.event_id for d in sent if d.camera_id == "side"
                                                  and d.action == "deny"}
    assert set(by("unread=1")) == {d.event_id for d in sent if d.kind == "unread"} and len(by("unread=1")) == 10
    day2 = {d.event_id for d in sent if time.localtime(d.decided_at)[:3] == (2026, 11, 2)}
    assert set(by("from=2026-11-02&to=2026-11-02")) == day2 and len(day2) == 24
    for bad in ("limit=101", "limit=0", "action=open;drop", "kind=x", "from=yesterday", "before=-1"):
        answer = c.get("/api/events?" + bad)
        assert answer.status == 400 and answer.json()["error"], bad


def test_one_event_its_crop_by_id_only_and_a_plates_history(api: Api):
    sent = fill(api)
    c = api.client
    d = sent[1]
    doc = c.get(f"/api/events/{d.event_id}").json()
    assert doc["plate"] == d.plate and doc["crop"] == f"/api/events/{d.event_id}/crop"
    answer = c.get(doc["crop"])
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/jpeg" and answer.body == JPEG
    for path in ("/api/events/../../etc/passwd/crop", "/api/events/..%2F..%2Fhistory.sqlite3/crop",
                 f"/api/events/{d.event_id[:-1]}/crop", "/api/events/%00/crop", "/static/..%2Fapi.py",
                 "/static/../api.py", "/static/.hidden.js", "/api/events/" + "a" * 5000):
        answer = c.get(path)
        assert answer.status in (404, 414) and not answer.body.startswith(b"\xff\xd8"), path
    hist = c.get("/api/plates/XY999ZZ").json()
    assert hist["events_total"] == sum(d.plate == "XY999ZZ" for d in sent) and hist["first_seen"].startswith("2026")
    assert {e["plate"] for e in hist["events"]} == {"XY999ZZ"}
    js = c.get("/static/api.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript") and b"X-CSRF-Token" in js.body


def test_usage_counts_paid_calls_per_day_and_carries_the_reader_quota(api: Api):
    for _ in range(3):
        api.store.paid(crop(), [])
    api.store.write([api.store._q.get_nowait() for _ in range(3)])
    doc = api.client.get("/api/usage").json()
    assert doc["paid_per_day"] == [{"day": time.strftime("%Y-%m-%d", time.gmtime()), "paid": 3}]
    assert doc["quota"] == {"used": 12, "limit": 2500, "resets_on": None}


def test_rules_are_written_atomically_and_in_force_at_once(api: Api):
    c = api.client
    c.session()
    listed = c.get("/api/rules").json()
    assert [(r["plate"], r["source"]) for r in listed["rules"]] == [("XY999ZZ", "config"), ("AB123CD", "file")]
    assert api.rules.check("KX52ODV", "gate").action == "none"
    added = c.call("POST", "/api/rules", {"plate": "KX52 ODV", "label": "<b>Bob</b>", "cameras": ["gate"],
                                          "schedule": "Mon-Sun 00:00-24:00"})
    assert added.status == 201 and b"<" not in added.body  # outside text never arrives as markup
    assert api.rules.check("KX52ODV", "gate").action == "open"  # no reload wait
    text = api.rules_path.read_text()
    assert text.startswith("plate,label,list\n# staff\nAB123CD,Alice,allow\n")  # header and comments kept
    assert text.endswith("KX52 ODV,<b>Bob</b>,allow,,,Mon-Sun 00:00-24:00,gate\n")
    assert oct(os.stat(api.rules_path).st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in api.rules_path.parent.iterdir() if "rules" in p.name) == ["rules.csv"]
    rule_id = added.json()["id"]

    bad = c.call("PUT", f"/api/rules/{rule_id}", {"plate": "KX52ODV", "schedule": "Mon 25:00-26:00"})
    assert bad.status == 400 and bad.json()["error"].startswith("schedule: bad time")  # the loader's words
    assert c.call("POST", "/api/rules", {"plate": "NO WAY!"}).json()["error"].startswith("plate: must be")
    assert c.call("POST", "/api/rules", {"plate": "AB1", "colour": "red"}).status == 400
    assert c.call("POST", "/api/rules", {"plate": "AB1", "list": "maybe"}).json()["error"].startswith("list:")
    assert api.rules_path.read_text() == text  # nothing written

    edited = c.call("PUT", f"/api/rules/{rule_id}", {"plate": "KX52ODV", "list": "deny"})
    assert edited.status == 200 and api.rules.check("KX52ODV", "gate").action == "deny"
    assert c.call("PUT", f"/api/rules/{rule_id}", {"plate": "KX52ODV"}).status == 409  # that row changed
    assert c.call("DELETE", f"/api/rules/{edited.json()['id']}").status == 200
    assert api.rules.check("KX52ODV", "gate").action == "none"
    assert api.rules_path.read_text() == "plate,label,list\n# staff\nAB123CD,Alice,allow\n"


def test_requests_are_bounded(api: Api):
    c = api.client
    c.session()
    assert c.get("/api/events?plate=" + "A" * 3000).status == 414
    assert c.call("POST", "/api/rules", raw=b"{" + b" " * 70_000 + b"}").status == 413
    assert c.call("POST", "/api/rules", raw=b"plate=AB1", headers={"Content-Type": "text/plain"}).status == 415
    assert c.call("PATCH", "/api/rules").status in (405, 501)
    assert c.call("DELETE", "/api/events").status == 405
    assert c.get("/api/nothing").status == 404
    assert c.get("/status").status in (200, 503)  # the status document is still there


def test_a_spreadsheets_rules_file_is_edited_in_its_own_delimiter_and_column_order(tmp_path: Path):
    api = Api(tmp_path, rules_csv="Plate;List;Cameras\r\nAB123CD;allow;gate\r\n")
    try:
        c = api.client
        c.session()
        assert [(r["plate"], r["cameras"]) for r in c.get("/api/rules").json()["rules"] if r["source"] == "file"] \
            == [("AB123CD", ["gate"])]
        added = c.call("POST", "/api/rules", {"plate": "KX52ODV", "list": "deny", "cameras": ["gate", "side"]})
        assert added.status == 201, added.body
        assert api.rules_path.read_bytes().endswith(b"AB123CD;allow;gate\r\nKX52ODV;deny;gate side\n")
        assert api.rules.check("KX52ODV", "side").action == "deny"
        no_column = c.call("POST", "/api/rules", {"plate": "LM07PQR", "label": "Carol"})
        assert no_column.status == 400 and no_column.json()["error"].startswith("label: the rules file's header")
        row = next(r for r in c.get("/api/rules").json()["rules"] if r["plate"] == "AB123CD")
        assert c.call("PUT", f"/api/rules/{row['id']}", {"plate": "AB123CD", "list": "deny"}).status == 200
        assert api.rules_path.read_bytes().startswith(b"Plate;List;Cameras\r\nAB123CD;deny;\n")
        assert api.rules.check("AB123CD", "gate").action == "deny"
    finally:
        api.close()
