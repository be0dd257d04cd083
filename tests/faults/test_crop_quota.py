"""``crop.save_dir`` under its quota through the running agent: the oldest crops go first, files
that are not crops stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.cropstore import CropStore
from tests.faults.conftest import agent_config, wait_until
from tests.prserver import PRServer

pytestmark = pytest.mark.faults


def test_saved_crops_stay_under_the_file_quota_oldest_first(tmp_path: Path, clips, pr_sdk_server: PRServer,
                                                            start_agent) -> None:
    folder = tmp_path / "crops"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a crop")
    old = folder / "gate-20200101T000000-1.jpg"
    old.write_bytes(b"\xff\xd8old")
    os.utime(old, (1_577_836_800, 1_577_836_800))
    cfg = agent_config(
        tmp_path,
        cameras=[{"id": "gate", "source": str(clips(("AB12 CDE", "XX99 XXX"))), "type": "file", "fps_max": 15.0}],
        reader={"type": "sdk", "url": pr_sdk_server.url, "rate_per_s": 0.0, "usage_poll_s": 0.0},
        crop={"save_dir": str(folder), "save_max_files": 1},
    )
    agent = start_agent(cfg)
    store = agent.service.parts.camera("gate").pipeline._store
    assert store is not None
    # the store deletes before it writes: wait for a written crop, not only for the deletions
    crops = wait_until(lambda: store.deleted >= 2 and (c := sorted(p.name for p in folder.glob("*.jpg")))
                       and len(c) == 1 and c, timeout_s=20, what="two crops saved over a quota of one")
    assert len(crops) == 1 and crops[0] != old.name, crops
    assert not old.exists()  # the oldest went first
    assert (folder / "notes.txt").exists()


def test_the_byte_quota_keeps_the_newest(tmp_path: Path) -> None:
    store = CropStore(tmp_path, max_files=1000, max_mb=10.0)
    for i in range(12):
        store.save(f"c-{i:02d}.jpg", bytes(1_000_000))
        os.utime(tmp_path / f"c-{i:02d}.jpg", (1e9 + i, 1e9 + i))
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == [f"c-{i:02d}.jpg" for i in range(2, 12)]
    assert store.deleted == 2
