"""The sqlite outbox: FIFO, survives reopening, bounded by count, size and age, thread-safe; a damaged file is
moved aside, an unwritable one replaced by a bounded outbox in memory."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from agent.config import StorageConfig
from agent.errors import AgentError
from agent.outbox import MEMORY_MAX_MB, Outbox, OutboxError
from tests.clock import Clock


def test_fifo_delete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "o.sqlite3"
    box = Outbox(path, StorageConfig()).open()
    ids = [box.put("t/a", b"1", {"qos": 1}), box.put("t/b", b"2"), box.put("t/c", b"3")]
    box.delete(ids[1])
    box.delete(ids[1])  # a second confirmation is harmless
    box.close()
    box.close()  # idempotent
    box = Outbox(path, StorageConfig()).open()
    items = box.pending()
    assert [(i.key, i.body, i.meta) for i in items] == [("t/a", b"1", {"qos": 1}), ("t/c", b"3", {})]
    assert box.pending(after_id=items[0].id)[0].body == b"3" and box.depth() == 2
    box.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bounds_drop_oldest_and_count(tmp_path: Path) -> None:
    t = Clock(1000.0)
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_items=3, outbox_max_mb=0.001,
                                                        outbox_max_age_s=60), mono=t).open()
    assert (box.max_items, box.max_bytes, box.max_age_s) == (3, 1000, 60)
    for i in range(5):
        box.put("k", bytes([i]))
    assert [i.body for i in box.pending()] == [b"\x02", b"\x03", b"\x04"] and box.dropped == 2
    box.put("k", b"x" * 900)  # 1000 bytes max: the small ones before it go
    assert [len(i.body) for i in box.pending()] == [1, 1, 900] and box.dropped == 3
    box.put("k", b"y" * 200)
    assert [len(i.body) for i in box.pending()] == [200] and box.dropped == 6
    t.t += 61
    box.put("k", b"new")
    assert [i.body for i in box.pending()] == [b"new"] and box.dropped == 7
    box.close()


def test_age_bound_applies_when_reading_too(tmp_path: Path) -> None:
    t = Clock()
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_age_s=60), mono=t)
    assert box.oldest_age_s() is None
    box.put("k", b"0")
    t.t += 30
    box.put("k", b"1")
    assert box.oldest_age_s() == pytest.approx(30)
    t.t += 45  # the first is 75 s old, the second 45 s; nothing new is put
    assert [i.body for i in box.pending(limit=1)] == [b"1"]
    assert box.depth() == 1 and box.dropped == 1 and box.oldest_age_s() == pytest.approx(45)


def test_drop_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    first = box.put("k", b"poison")
    box.put("k", b"ok")
    box.drop(first, "unusable")
    assert [i.body for i in box.pending()] == [b"ok"] and box.dropped == 1


def test_nothing_happens_in_the_constructor(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "o.sqlite3"
    Outbox(path)
    assert not path.exists()


def test_an_unwritable_place_falls_back_to_memory_bounded_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    box = Outbox(tmp_path / "file" / "o.sqlite3", StorageConfig(outbox_max_mb=1000.0)).open()
    where = box.storage()
    assert where["storage"] == "memory" and "File exists" in where["storage_error"], where
    assert box.max_bytes == int(MEMORY_MAX_MB * 1_000_000)
    box.put("k", b"x" * 1000)
    assert [i.body for i in box.pending()] == [b"x" * 1000]
    box.close()


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"\x00garbage" * 500)
    box = Outbox(path).open()
    where = box.storage()
    assert where["storage"] == "disk" and where["moved_aside"], where
    aside = Path(where["moved_aside"])
    assert aside.name.startswith("o.sqlite3.damaged-") and aside.read_bytes().startswith(b"\x00garbage")
    box.put("k", b"1")
    box.close()
    assert [i.body for i in Outbox(path).open().pending()] == [b"1"]  # the fresh file is on disk


def fill(path: Path, n: int = 200) -> None:
    box = Outbox(path, StorageConfig(outbox_max_items=5000)).open()
    box._trim = lambda db: None  # type: ignore[method-assign]  # n puts without n counts: quick
    for i in range(n):
        box.put("k", bytes([i % 256]) * 3000)
    box.close()


def damage(path: Path) -> None:
    """Overwrite bytes in the middle of the file, as a bad SD card sector would."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * 8192)


def test_a_damaged_page_is_found_at_open_and_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path)
    damage(path)
    box = Outbox(path).open()
    assert box.storage()["moved_aside"] and box.depth() == 0
    box.close()


def test_a_page_damaged_while_open_is_moved_aside_and_the_call_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path, 1500)  # 4.5 MB: more than sqlite's page cache (2 MB), so pages are read again
    box = Outbox(path, StorageConfig(outbox_max_items=5000)).open()
    damage(path)
    box.put("k", b"after")  # counting the items reads the damaged page
    items = box.pending()
    assert box.storage()["moved_aside"], box.storage()
    assert [i.body for i in items] == [b"after"]
    box.close()


def test_closed_outbox_raises_instead_of_reopening(tmp_path: Path) -> None:
    assert issubclass(OutboxError, AgentError) and issubclass(OutboxError, OSError)
    box = Outbox(tmp_path / "o.sqlite3").open()
    box.close()
    for call in (lambda: box.put("k", b"x"), box.depth, box.pending, lambda: box.delete(1)):
        with pytest.raises(OutboxError, match="closed"):
            call()


def test_concurrent_puts_and_deletes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3").open()
    ids: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(50):
            item = box.put(f"w{n}", bytes([i]))
            with lock:
                ids.append(item)
            if i % 2:
                box.delete(item)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(ids)) == 200 and box.depth() == 100
    left = box.pending()
    assert [i.id for i in left] == sorted(i.id for i in left) and all(i.body[0] % 2 == 0 for i in left)
    box.close()


def test_a_database_of_the_first_format_gets_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,"
                   " body BLOB NOT NULL, meta TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("INSERT INTO outbox (key, body, meta, created) VALUES ('k', x'00', '{}', 1.0)")  # "1970"
    db.close()
    mono = Clock(100.0)
    box = Outbox(path, StorageConfig(outbox_max_age_s=60), mono=mono, boot_id=lambda: "b",
                 synchronised=lambda: True).open()
    assert [i.body for i in box.pending()] == [b"\x00"] and box.dropped == 0  # age unknown: counted from now
    mono.t += 61
    assert box.pending() == [] and box.dropped == 1
    box.close()
