"""A crop that keeps getting 429s: parked after MAX_THROTTLE_RETRIES, read later from the real sqlite
outbox, delivered once. The worker runs on its real thread against the contract server; only its
clock runs fast, so the server's "Expected available in 1 second" hints take milliseconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.read import CloudReader
from agent.read.outbox import Outbox
from agent.read.worker import MAX_THROTTLE_RETRIES, ReadWorker
from agent.types import PlateCrop, PlateRead
from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer
from tests.read.conftest import make_crop, reader_cfg

SPEED = 20.0  # worker seconds per real second


class FastClock:
    """Monotonic time running SPEED times faster than the real one."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return self.t0 + (time.monotonic() - self.t0) * SPEED


def wait_until(check: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_crop_throttled_too_often_is_parked_then_read_once(pr_server: PRServer, tmp_path: Path) -> None:
    cfg = reader_cfg(pr_server.url)
    reader = CloudReader(cfg, token=PR_TOKEN)
    outbox = Outbox(tmp_path / "outbox.sqlite3").open()
    results: list[tuple[PlateCrop, Sequence[PlateRead] | None]] = []
    stop = threading.Event()
    # a large max age: the fast clock must not make the crop stale (stale crops are parked too)
    worker = ReadWorker(reader, outbox, cfg, lambda c, r: results.append((c, r)), stop,
                        max_decision_age_s=3600.0, clock=FastClock())
    pr_server.outage = "429"
    worker.start()
    try:
        crop = make_crop(7)
        assert worker.submit(crop)
        wait_until(lambda: worker.stats()["parked"] == {"throttled": 1} and outbox.depth() == 1, what="parked")
        assert results == [(crop, None)]  # no answer now: the pipeline may try another frame
        assert len(pr_server.lookups()) >= MAX_THROTTLE_RETRIES + 1
        assert set(pr_server.statuses()) == {429}

        pr_server.outage = None  # the limit lifts: the parked crop is read from the outbox
        wait_until(lambda: len(results) == 2 and outbox.depth() == 0, what="read from the outbox")
        stop.set()
        worker.close()  # the thread is gone: nothing can be delivered after this
    finally:
        stop.set()
        worker.close()
        outbox.close()
        reader.close()
    parked_copy, reads = results[1]
    assert reads is not None
    assert parked_copy.frame_seq == 7 and parked_copy.jpeg == crop.jpeg
    assert [r.plate for r in reads] == ["ABC123"]
    assert pr_server.statuses().count(200) == 1  # read once, not lost and not twice
    s = worker.stats()
    assert s["crops_read"] == 1 and s["dropped"] == {} and s["throttled"] >= MAX_THROTTLE_RETRIES + 1
