"""The event store on a real sqlite file: what an event keeps, paid reads per pass, the quota (MB and
days, oldest first), restarts, a power cut (SIGKILL while writing), a damaged or unwritable file,
and a store that is stuck never holding up the relay."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from agent import config, dbfile
from agent.config import HistoryConfig
from agent.history import EventStore
from agent.history import query as q
from agent.pipeline import Dispatcher
from agent.types import Decision
from agent.wiring import Closers, build_outputs
from tests.history.events import crop, decision
from tests.sinks.test_mqtt import wait_until

DAY = 86400.0
JPEG = b"\xff\xd8" + bytes(2000) + b"\xff\xd9"


def store_at(path: Path, **kw) -> EventStore:
    wall = kw.pop("wall", time.time)
    synced = kw.pop("synchronised", lambda: True)
    return EventStore(HistoryConfig(**kw), path, wall=wall, synchronised=synced).open()


def test_an_event_keeps_what_the_operator_needs(tmp_path: Path):
    store = store_at(tmp_path / "h.sqlite3")
    c = crop(track=7)
    store.paid(c, [])  # an answered upload is paid for, even with no plate in it
    store.paid(c, None)  # parked or dropped: no answer, not paid
    d = decision("AB123CD", track=7, jpeg=JPEG, direction="leaving")
    store.write([d])  # what the thread does with what was queued ...
    store.write([store._q.get_nowait()])  # ... the paid read, written after the new event
    store.write([d])  # a replayed event is kept once
    store.write([decision("AB123CD", track=7, kind="update")])
    page = q.events(store, q.Filter())
    assert [e["type"] for e in page["events"]] == ["update", "new"]
    e = page["events"][1]
    assert (e["event_id"], e["plate"], e["action"], e["rule"], e["reason"], e["direction"], e["camera_id"]) == (
        d.event_id, "AB123CD", "open", "allow:AB123CD", "exact match", "leaving", "gate")
    assert [c["plate"] for c in e["read"]["candidates"]] == ["AB123CD", "AB123C0"]
    assert e["read"]["score"] == 0.93 and e["decided_at"].endswith("Z") and e["read"]["captured_at"].endswith("Z")
    assert e["paid_calls"] == page["events"][0]["paid_calls"] == 1  # the pass's, whenever written
    assert e["crop"] == f"/api/events/{d.event_id}/crop" and q.image(store, d.event_id) == JPEG
    assert q.image(store, "../../etc/passwd") is None and q.event(store, "x" * 32) is None
    assert store.stats()["events"] == 3 - 1 and store.stats()["reads"] == 1
    store.close()


def test_the_quota_in_mb_drops_the_oldest_first_and_bounds_the_files(tmp_path: Path):
    path = tmp_path / "h.sqlite3"
    store = store_at(path, quota_mb=1.0)
    ids = []
    for i in range(2500):  # 5 MB of crops into a 1 MB quota
        d = decision(f"AB{i:04d}", jpeg=JPEG)
        ids.append(d.event_id)
        store.write([d])
    stats = store.stats()
    assert stats["bytes"] <= 1_000_000 and stats["evicted"] > 2000
    kept = {e["event_id"] for e in q.events(store, q.Filter(limit=100))["events"]}
    assert kept == set(ids[-100:])  # the newest stay
    assert q.event(store, ids[0]) is None and q.image(store, ids[0]) is None  # the oldest went, crop and all
    n_kept = store.read(lambda db: db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    assert 400 < n_kept < 500  # ~2.3 kB each
    assert store.read(lambda db: db.execute("SELECT COUNT(*) FROM images").fetchone()[0]) == n_kept
    store.close()
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("h.sqlite3"))
    assert on_disk < 2_500_000  # the quota plus sqlite's own: free pages are reused, the WAL is cut back


def test_events_older_than_max_days_go_once_the_clock_is_synchronised(tmp_path: Path):
    now = [1_800_000_000.0]
    synced = [False]
    store = store_at(tmp_path / "h.sqlite3", max_days=30.0, wall=lambda: now[0], synchronised=lambda: synced[0])
    old = decision("OLD1", wall=now[0] - 31 * DAY)
    store.paid(crop(wall=now[0]), [])
    store.write([old, store._q.get_nowait(), decision("NEW1", wall=now[0] - 29 * DAY)])
    assert q.event(store, old.event_id) is not None  # a clock not known right: nothing is dated out
    synced[0] = True
    now[0] += 2 * DAY  # the paid read is now 2 days old, NEW1 31 days
    store.write([decision("NOW1", wall=now[0])])
    assert [e["plate"] for e in q.events(store, q.Filter())["events"]] == ["NOW1"]
    assert q.paid_per_day(store) == [{"day": time.strftime("%Y-%m-%d", time.gmtime(now[0] - 2 * DAY)), "paid": 1}]
    store.close()


def test_a_restart_keeps_the_events_and_the_quota_goes_on_counting(tmp_path: Path):
    path = tmp_path / "h.sqlite3"
    store = EventStore(HistoryConfig(quota_mb=0.1), path)
    store.start()
    sent = [decision(f"AB{i:03d}", jpeg=JPEG) for i in range(20)]
    for d in sent:
        store.send(d)
    store.close()  # writes what was queued before it stops
    again = store_at(path, quota_mb=0.1)
    assert {e["event_id"] for e in q.events(again, q.Filter(limit=100))["events"]} == {d.event_id for d in sent}
    total = again.stats()["bytes"]
    assert 20 * 2000 < total < 0.1e6
    for i in range(40):
        again.write([decision(f"CD{i:03d}", jpeg=JPEG)])
    assert again.stats()["bytes"] <= 0.1e6 and q.event(again, sent[0].event_id) is None
    again.close()


def test_a_power_cut_while_writing_loses_nothing_committed(tmp_path: Path):
    path = tmp_path / "h.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-m", "tests.history.store_child", str(path)], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None
    committed = [child.stdout.readline().strip() for _ in range(300)]
    os.kill(child.pid, signal.SIGKILL)  # mid-write: the next transaction is under way
    child.wait(10)
    committed += [line.strip() for line in child.stdout if line.strip()]
    assert child.returncode == -signal.SIGKILL and all(committed)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in db.execute("SELECT event_id FROM events")}
    db.close()
    assert set(committed) <= stored and len(stored) - len(committed) <= 1
    store = store_at(path)  # and the agent opens it as it is
    assert store.stats()["storage"] == dbfile.DISK and store.stats()["moved_aside"] is None
    store.close()


def test_a_damaged_file_is_moved_aside_and_an_unwritable_folder_falls_back_to_memory(tmp_path: Path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = store_at(path)
    stats = store.stats()
    assert stats["storage"] == dbfile.DISK and stats["moved_aside"] and Path(stats["moved_aside"]).exists()
    store.write([decision("AB123CD")])
    assert len(q.events(store, q.Filter())["events"]) == 1
    store.close()
    (tmp_path / "file").write_text("not a folder")  # unwritable even for root
    store = store_at(tmp_path / "file" / "h.sqlite3", quota_mb=500.0)
    stats = store.stats()
    assert stats["storage"] == dbfile.MEMORY and stats["storage_error"]
    assert stats["quota_bytes"] <= 10_000_000  # memory is bounded tighter than the disk
    store.write([decision("AB123CD")])
    assert len(q.events(store, q.Filter())["events"]) == 1
    store.close()


def test_a_stuck_store_never_holds_up_the_relay(tmp_path: Path):
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": "clip.mp4"}],
        "relay": {"type": "gpio", "pin": "17", "pulse_s": 0.05, "cooldown_s": 0.0},
    })
    factory = MockFactory()
    closers: Closers = []
    outputs = build_outputs(cfg, tmp_path, closers, relay_kw={"pin_factory": factory})
    store = EventStore(HistoryConfig(queue_size=4), tmp_path / "h.sqlite3")
    blocked, entered = threading.Event(), threading.Event()
    real_write = store.write

    def stuck_write(items: list) -> None:  # a disk that does not answer
        entered.set()
        blocked.wait(30)
        real_write(items)

    store.write = stuck_write  # type: ignore[method-assign]
    store.start()
    decisions: list[Decision] = [decision(f"AB{i:03d}", action="open") for i in range(20)]

    class Decided:
        def __init__(self) -> None:
            self.queue = list(decisions)

        def observe(self, read):
            return [self.queue.pop(0)]

        def expire(self, everything=False):
            return []

        def unread(self, end):
            return []

    gate = outputs.relay
    assert gate is not None
    dispatch = Dispatcher(Decided(), [*outputs.sinks(), store])
    dispatch.handle(decisions[0].read)
    entered.wait(5)  # the store's thread is now stuck in its write
    pin = factory.pin(17)
    t0 = time.monotonic()
    for d in decisions[1:]:
        wait_until(lambda: not gate.is_on and gate.stats()["state"] == "off")
        dispatch.handle(d.read)
        assert pin.state == 1  # the relay pulsed before handle() returned
    assert time.monotonic() - t0 < 15.0
    assert gate.stats()["pulses"] == 20
    assert store.stats()["dropped_events"] == 20 - 1 - 4  # one being written, four queued, the rest dropped
    blocked.set()
    store.close()
    for _, close in reversed(closers):
        close()
    assert len(q.events(EventStore(HistoryConfig(), tmp_path / "h.sqlite3").open(), q.Filter())["events"]) == 5


def test_the_frame_of_an_events_best_read_is_kept_when_asked_and_the_shelf_is_bounded(tmp_path: Path):
    import numpy as np

    from agent.history.frames import PER_CAMERA, FrameShelf
    from agent.types import Frame

    shelf = FrameShelf()
    image = np.full((48, 64, 3), 128, np.uint8)
    for seq in range(1, 7):
        shelf.keep(Frame("gate", image, seq, time.time(), time.monotonic()), crop(seq=seq))
    assert [s for s in range(1, 7) if shelf.take("gate", s)] == list(range(7 - PER_CAMERA, 7))
    store = EventStore(HistoryConfig(save_frames=True), tmp_path / "h.sqlite3", frames=shelf).open()
    d = decision("AB123CD")  # its crop is of frame 1: no longer on the shelf
    assert d.read.crop is not None
    late = dataclasses.replace(d, event_id="f" * 32, read=dataclasses.replace(d.read, crop=crop(seq=6)))
    store.write([d, late])
    assert q.event(store, d.event_id)["frame"] is None
    assert q.event(store, late.event_id)["frame"] == f"/api/events/{late.event_id}/frame"
    assert q.image(store, late.event_id, "frame") == shelf.take("gate", 6)
    assert q.image(store, late.event_id, "../crop") is None
    store.close()


def test_the_store_waits_for_a_frame_the_pipeline_expects_and_not_for_one_that_will_not_come():
    """The reader can answer before the pipeline has encoded the frame it uploaded a crop of: the
    frame is expected before the upload, and taking it waits for it."""
    import numpy as np

    from agent.history.frames import FrameShelf
    from agent.types import Frame

    shelf = FrameShelf()
    image = np.full((48, 64, 3), 128, np.uint8)
    uploaded, dropped = crop(seq=7), crop(seq=8)
    shelf.expect(uploaded)
    shelf.expect(dropped)
    assert shelf.take("gate", 7, wait_s=0) is None  # not encoded yet
    def keep() -> None:  # as the pipeline does once the upload is on its way
        shelf.keep(Frame("gate", image, 7, time.time(), time.monotonic()), uploaded)
        shelf.forget(uploaded)

    keeper = threading.Timer(0.3, keep)
    keeper.start()
    assert shelf.take("gate", 7, wait_s=60) is not None  # waited for it
    keeper.join()
    got: list[bytes | None] = []
    taker = threading.Thread(target=lambda: got.append(shelf.take("gate", 8, wait_s=60)))
    taker.start()
    shelf.forget(dropped)  # its upload did not go: nothing to wait for
    taker.join(timeout=30)
    assert not taker.is_alive() and got == [None]
