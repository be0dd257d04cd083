"""The reader's crop outbox: every field round-trips, order, bounds in JPEG bytes, exactly-once hand-off.

The storage itself (reopen, WAL, age, thread safety, fail fast) is tested in tests/test_outbox.py.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from agent.config import StorageConfig
from agent.read.outbox import FILENAME, Outbox
from agent.types import Box
from tests.read.conftest import make_crop
from tests.clock import Clock


def test_fifo_round_trip_keeps_every_field(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    crops = [make_crop(i, camera_id=f"cam{i}", region=Box(i, 2 * i, 100 + i, 60 + i)) for i in range(3)]
    crops[1] = dataclasses.replace(crops[1], track_id=7)  # the vehicle pass survives parking
    ids = [box.put(c) for c in crops]
    assert ids == sorted(ids) and box.depth() == 3 and box.dropped == 0
    got = []
    while (head := box.peek()) is not None:
        item_id, crop = head
        got.append(crop)
        box.delete(item_id)
    assert [c.frame_seq for c in got] == [0, 1, 2]
    for a, b in zip(crops, got, strict=True):
        assert (a.camera_id, a.region, a.detection, a.jpeg, a.wall_time, a.sharpness, a.quality, a.track_id) == (
            b.camera_id, b.region, b.detection, b.jpeg, b.wall_time, b.sharpness, b.quality, b.track_id)
    assert box.depth() == 0 and box.oldest_age_s() is None


def test_peek_does_not_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put(make_crop(1))
    assert box.peek() is not None and box.peek() is not None
    assert box.depth() == 1


def test_count_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_items=3))
    for i in range(5):
        box.put(make_crop(i))
    assert box.dropped == 2 and box.depth() == 3
    head = box.peek()
    assert head is not None and head[1].frame_seq == 2


def test_byte_bound_counts_the_jpeg(tmp_path: Path) -> None:
    crops = [make_crop(i, noise=True, region=Box(0, 0, 120, 120)) for i in range(6)]
    size = len(crops[0].jpeg)
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_mb=size * 3.5 / 1_000_000))
    for c in crops:
        box.put(c)
    assert box.depth() == 3
    head = box.peek()
    assert head is not None and head[1].frame_seq == 3
    assert box.dropped == 3


def test_age_bound_uses_the_monotonic_clock_it_was_given(tmp_path: Path) -> None:
    mono = Clock()
    box = Outbox(tmp_path / "o.sqlite3", StorageConfig(outbox_max_age_s=60), mono=mono)
    box.put(make_crop(0))
    mono.t += 30
    box.put(make_crop(1))
    assert box.oldest_age_s() == pytest.approx(30)
    mono.t += 45
    head = box.peek()
    assert head is not None and head[1].frame_seq == 1 and box.dropped == 1


def test_from_storage_config(tmp_path: Path) -> None:
    cfg = StorageConfig(state_dir=str(tmp_path), outbox_max_items=2, outbox_max_mb=1.0, outbox_max_age_s=10.0)
    box = Outbox.from_config(cfg)
    assert box.path == tmp_path / FILENAME
    assert (box.store.max_items, box.store.max_bytes, box.store.max_age_s) == (2, 1_000_000, 10.0)
    assert box.open() is box and box.path.exists()
    box.close()


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "o.sqlite3"
    first = Outbox(path)
    for i in range(3):
        first.put(make_crop(i))
    first.close()
    second = Outbox(path)
    head = second.peek()
    assert second.depth() == 3 and head is not None and head[1].frame_seq == 0


def test_capture_time_is_kept_within_a_boot_and_unknown_across_boots(tmp_path: Path) -> None:
    wall, mono, boot = Clock(5_000.0), Clock(100.0), ["boot-a"]
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, wall=wall, mono=mono, boot_id=lambda: boot[0])
    box.put(make_crop(0, wall_time=4_990.0, mono_time=90.0))
    head = box.peek()
    assert head is not None and head[1].mono_time == 90.0 and not head[1].late  # same boot: as captured
    box.close()
    boot[0] = "boot-b"
    wall.t, mono.t = 3_000.0, 7.0  # rebooted with a clock that is behind: the crop looks 1990 s "young"
    head = Outbox(path, wall=wall, mono=mono, boot_id=lambda: boot[0]).peek()
    assert head is not None and head[1].late and head[1].mono_time == 7.0  # of unknown age: late, dated now


def test_an_unreadable_entry_is_dropped_not_blocking_the_head(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    box.put(make_crop(0))
    box.put(make_crop(1))
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE outbox SET meta = ? WHERE id = (SELECT MIN(id) FROM outbox)",
                   (json.dumps({"frame_seq": 0}),))
    db.close()
    head = box.peek()
    assert head is not None and head[1].frame_seq == 1
    assert box.depth() == 1 and box.dropped == 1
