"""The durable outbox: order, bounds (count, bytes, age), restarts, exactly-once hand-off."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.config import StorageConfig
from agent.read.outbox import FILENAME, Outbox
from agent.types import Box
from tests.read.conftest import make_crop


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_fifo_round_trip_keeps_every_field(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    crops = [make_crop(i, camera_id=f"cam{i}", region=Box(i, 2 * i, 100 + i, 60 + i)) for i in range(3)]
    for c in crops:
        assert box.put(c) == 0
    assert box.depth() == 3
    got = []
    while (head := box.peek()) is not None:
        item_id, crop = head
        got.append(crop)
        box.delete(item_id)
    assert [c.frame_seq for c in got] == [0, 1, 2]
    for a, b in zip(crops, got, strict=True):
        assert (a.camera_id, a.region, a.detection, a.jpeg, a.wall_time, a.sharpness, a.quality) == (
            b.camera_id, b.region, b.detection, b.jpeg, b.wall_time, b.sharpness, b.quality)
    assert box.depth() == 0 and box.oldest_age_s() is None


def test_peek_does_not_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put(make_crop(1))
    assert box.peek() is not None and box.peek() is not None
    assert box.depth() == 1


def test_count_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_items=3)
    evicted = sum(box.put(make_crop(i)) for i in range(5))
    assert evicted == 2 and box.dropped == 2 and box.depth() == 3
    head = box.peek()
    assert head is not None and head[1].frame_seq == 2


def test_byte_bound(tmp_path: Path) -> None:
    crops = [make_crop(i, noise=True, region=Box(0, 0, 120, 120)) for i in range(6)]
    size = len(crops[0].jpeg)
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=int(size * 3.5))
    for c in crops:
        box.put(c)
    assert box.depth() == 3
    head = box.peek()
    assert head is not None and head[1].frame_seq == 3
    assert box.dropped == 3


def test_age_bound(tmp_path: Path) -> None:
    wall = Clock()
    box = Outbox(tmp_path / "o.sqlite3", max_age_s=60, wall=wall)
    box.put(make_crop(0))
    wall.t += 30
    box.put(make_crop(1))
    assert box.oldest_age_s() == pytest.approx(30)
    wall.t += 45  # the first is 75 s old, the second 45 s
    head = box.peek()
    assert head is not None and head[1].frame_seq == 1
    assert box.depth() == 1 and box.dropped == 1


def test_bounds_from_storage_config(tmp_path: Path) -> None:
    cfg = StorageConfig(state_dir=str(tmp_path), outbox_max_items=2, outbox_max_mb=1.0, outbox_max_age_s=10.0)
    box = Outbox.from_config(cfg)
    assert box.path == tmp_path / FILENAME
    assert (box.max_items, box.max_bytes, box.max_age_s) == (2, 1_000_000, 10.0)
    assert Outbox(tmp_path / "x", cfg).max_items == 2  # the service's call shape


def test_survives_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "o.sqlite3"
    first = Outbox(path)
    for i in range(3):
        first.put(make_crop(i))
    first.close()
    first.close()  # idempotent
    second = Outbox(path)
    head = second.peek()
    assert second.depth() == 3 and head is not None and head[1].frame_seq == 0
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_monotonic_time_is_rebuilt_from_wall_age(tmp_path: Path) -> None:
    wall, mono = Clock(5_000.0), Clock(100.0)
    box = Outbox(tmp_path / "o.sqlite3", wall=wall, mono=mono)
    box.put(make_crop(0, wall_time=4_990.0, mono_time=123456.0))  # mono from another boot
    head = box.peek()
    assert head is not None and head[1].mono_time == pytest.approx(90.0)  # 10 s old now


def test_nothing_happens_in_the_constructor(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "o.sqlite3"
    Outbox(path)
    assert not path.exists()
