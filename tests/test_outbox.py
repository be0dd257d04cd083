"""The sqlite outbox: FIFO, survives reopening, bounded by count, size and age."""

from __future__ import annotations

from pathlib import Path

from agent.config import StorageConfig
from agent.outbox import Outbox


def test_fifo_delete_and_reopen(tmp_path: Path):
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig()).open()
    ids = [box.put("t/a", b"1", {"qos": 1}), box.put("t/b", b"2"), box.put("t/c", b"3")]
    box.delete(ids[1])
    box.close()
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig()).open()
    items = box.pending()
    assert [(i.key, i.body, i.meta) for i in items] == [("t/a", b"1", {"qos": 1}), ("t/c", b"3", {})]
    assert box.pending(after_id=items[0].id)[0].body == b"3" and len(box) == 2
    box.close()


def test_bounds_drop_oldest(tmp_path: Path):
    t = [1000.0]
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_items=3, outbox_max_mb=0.001,
                                                        outbox_max_age_s=60), clock=lambda: t[0]).open()
    for i in range(5):
        box.put("k", bytes([i]))
    assert [i.body for i in box.pending()] == [b"\x02", b"\x03", b"\x04"] and box.dropped == 2
    box.put("k", b"x" * 900)  # 1000 bytes max: the small ones before it go
    assert [len(i.body) for i in box.pending()] == [1, 1, 900]
    box.put("k", b"y" * 200)
    assert [len(i.body) for i in box.pending()] == [200]
    t[0] += 61
    box.put("k", b"new")
    assert [i.body for i in box.pending()] == [b"new"]
    box.close()
