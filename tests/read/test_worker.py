"""The reader thread against the contract server: pacing, 429, 403, 413, outages, outbox, late reads."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.read import CloudReader, SdkReader
from agent.read.outbox import Outbox
from agent.read.limits import TokenBucket, shrink_jpeg
from agent.read.worker import ReadWorker
from agent.types import Box, PlateCrop, PlateRead
from tests.clock import Clock
from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer
from tests.read.conftest import make_crop, reader_cfg


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class Harness:
    """A started worker, its outbox and everything it delivered."""

    def __init__(self, server: PRServer, tmp_path: Path, *, token: str = PR_TOKEN, sdk: bool = False,
                 max_age: float = 5.0, clock: Clock | None = None, **cfg: Any) -> None:
        """``clock``: the worker's monotonic clock (and, moved alike, its wall clock); else the real ones."""
        self.cfg = reader_cfg(server.url, type="sdk" if sdk else "cloud", **cfg)
        self.reader = SdkReader(self.cfg) if sdk else CloudReader(self.cfg, token=token)
        mono: Callable[[], float] = clock or time.monotonic
        self.wall: Callable[[], float] = time.time
        if clock is not None:
            offset = time.time() - clock.t
            self.wall = lambda: clock() + offset
        wall = self.wall
        self.outbox = Outbox(tmp_path / "outbox.sqlite3", wall=wall, mono=mono)
        self.reads: list[PlateRead] = []
        self.results: list[tuple[PlateCrop, list[PlateRead] | None]] = []
        self.stop = threading.Event()
        self.worker = ReadWorker(self.reader, self.outbox, self.cfg, self._answer, self.stop,
                                 max_decision_age_s=max_age, clock=mono, wall=wall)

    def _answer(self, crop: PlateCrop, reads: Sequence[PlateRead] | None) -> None:
        self.results.append((crop, None if reads is None else list(reads)))
        self.reads.extend(reads or [])

    def start(self) -> Harness:
        self.worker.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.worker.close()
        self.worker.close()
        self.outbox.close()
        self.reader.close()


@pytest.fixture
def harness(pr_server: PRServer, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**kw: Any) -> Harness:
        h = Harness(pr_server, tmp_path, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_token_bucket_spacing_and_hold() -> None:
    t = [0.0]
    bucket = TokenBucket(2.0, lambda: t[0], margin=1.0)
    assert bucket.delay() == 0
    bucket.take()
    assert bucket.delay() == pytest.approx(0.5)
    t[0] = 0.5
    assert bucket.delay() == 0
    bucket.take()
    bucket.hold(3.0)
    assert bucket.delay() == pytest.approx(3.0)
    assert TokenBucket(0, lambda: 0.0).interval == 0  # unlimited


def test_reads_delivered_with_the_original_crop(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    h = harness().start()
    crops = [make_crop(i) for i in range(3)]
    for c in crops:
        assert h.worker.submit(c)
    assert wait_for(lambda: len(h.reads) == 3)
    assert [r.crop.frame_seq for r in h.reads if r.crop] == [0, 1, 2]
    assert [c for c, _ in h.results] == crops and all(a is b for a, (b, _) in zip(crops, h.results, strict=True))
    s = h.worker.stats()
    assert (s["state"], s["uploads"], s["crops_read"], s["reads"], s["outbox"]["depth"]) == ("ok", 3, 3, 3, 0)
    assert s["last_success"] is not None and s["errors"] == {}
    assert threading.current_thread().name != "reader"
    assert any(t.name == "reader" for t in threading.enumerate())


def test_rate_limit_spaces_uploads_and_avoids_429(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    clock = Clock(time.monotonic())
    h = harness(rate_per_s=8.0, clock=clock).start()
    for i in range(6):
        h.worker.submit(make_crop(i))
    assert wait_for(lambda: len(pr_server.lookups()) == 1)  # the first one at once
    interval, due = 1.1 / 8.0, clock.t  # a 10% margin over the server's 1/8 s
    for n in range(2, 7):
        due += interval
        clock.set(math.nextafter(due, 0))
        clock.wait_reads("reader", 20)  # more than one whole turn (7 reads) just before its next slot ...
        assert len(pr_server.lookups()) == n - 1
        clock.set(due)
        assert wait_for(lambda n=n: len(pr_server.lookups()) == n)  # ... and uploads at it
    assert wait_for(lambda: len(h.reads) == 6)
    assert pr_server.statuses() == [200] * 6


def test_429_waits_for_the_hint_then_retries(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    pr_server.faults.append("429")
    h = harness().start()
    h.worker.submit(make_crop(0))
    assert wait_for(lambda: len(h.reads) == 1)
    first, second = pr_server.lookups()
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95  # "Expected available in 1 second."
    s = h.worker.stats()
    assert s["throttled"] == 1 and s["parked"] == {} and s["outbox"]["depth"] == 0


def test_403_pauses_uploads_logs_once_then_drains(
    pr_server: PRServer, harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pr_server.faults.append("403")
    clock = Clock(time.monotonic())
    h = harness(forbidden_backoff_s=0.6, clock=clock).start()
    for i in range(5):
        h.worker.submit(make_crop(i))
    assert wait_for(lambda: h.worker.stats()["parked"].get("forbidden") == 5)
    s = h.worker.stats()
    assert len(pr_server.lookups()) == 1  # one 403, then no uploads while paused
    assert s["state"] == "forbidden" and s["forbidden_until"] == h.wall() + 0.6
    assert s["errors"] == {"forbidden": 1}
    clock.set(clock.t + 0.6)  # the pause is over
    assert wait_for(lambda: len(h.reads) == 5)
    assert [r.crop.frame_seq for r in h.reads if r.crop] == [0, 1, 2, 3, 4]  # oldest first
    assert len(pr_server.lookups()) == 6
    s = h.worker.stats()
    assert s["state"] == "ok" and s["forbidden_until"] is None and s["outbox"]["depth"] == 0
    pausing = [r for r in caplog.records if "pausing uploads" in r.getMessage()]
    assert len(pausing) == 1 and pausing[0].levelno == logging.WARNING
    assert PR_TOKEN not in caplog.text


def test_403_keeps_probing_once_per_period(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    pr_server.outage = "403"
    clock = Clock(time.monotonic())
    h = harness(forbidden_backoff_s=0.3, clock=clock).start()
    for i in range(3):
        h.worker.submit(make_crop(i))
    assert wait_for(lambda: h.worker.stats()["parked"].get("forbidden") == 3)
    due = clock.t
    for probes in range(1, 4):  # one probe per 0.3 s period, never the whole queue
        due += 0.3
        clock.set(math.nextafter(due, 0))
        clock.wait_reads("reader", 20)  # more than one whole turn of the reader (7 reads)
        assert len(pr_server.lookups()) == probes
        clock.set(due)
        until = h.wall() + 0.3  # the probe's 403 starts the next period
        assert wait_for(lambda u=until: h.worker.stats()["forbidden_until"] == u)
        assert len(pr_server.lookups()) == probes + 1
    assert h.worker.stats()["outbox"]["depth"] == 3 and not h.reads


def test_413_reencodes_smaller_and_retries_once(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    region = Box(100, 100, 400, 400)
    crop = make_crop(0, region=region, noise=True)
    small = shrink_jpeg(crop.jpeg)
    assert small is not None and len(small) < len(crop.jpeg) // 2
    pr_server.max_upload_bytes = (len(small) + len(crop.jpeg)) // 2
    h = harness().start()
    h.worker.submit(crop)
    assert wait_for(lambda: len(h.reads) == 1)
    first, second = pr_server.lookups()
    assert (first.status, second.status) == (413, 200)
    assert second.image_size == (150, 150)
    got, want = h.reads[0].box, Box(130, 175, 370, 325)  # through the smaller JPEG: same frame box
    assert all(abs(a - b) <= 2 for a, b in zip(got.as_dict().values(), want.as_dict().values(), strict=True))
    assert h.results[0][0] is crop  # the pipeline gets its own crop back
    assert h.worker.stats()["errors"] == {"too_large": 1}


def test_second_413_drops_the_crop(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    pr_server.max_upload_bytes = 100
    h = harness().start()
    crop = make_crop(0)
    h.worker.submit(crop)
    assert wait_for(lambda: h.worker.stats()["dropped"].get("too_large") == 1)
    assert pr_server.statuses() == [413, 413]
    assert h.worker.stats()["outbox"]["depth"] == 0
    assert h.results == [(crop, None)]  # answered "no answer" (not "no plate") so the pipeline may send another frame


@pytest.mark.parametrize("outage", ["502", "slow", "drop", "refuse"])
def test_outage_retries_parks_and_drains_in_order(
    pr_server: PRServer, harness: Callable[..., Harness], outage: str
) -> None:
    pr_server.slow_s = 1.0
    h = harness(retries=2, timeout_read_s=0.3).start()
    h.worker.submit(make_crop(100))  # a kept-alive connection exists when the outage starts
    assert wait_for(lambda: len(h.reads) == 1)
    h.reads.clear()
    if outage == "refuse":
        pr_server.stop_listening()
    else:
        pr_server.outage = outage
    before = len(pr_server.lookups())
    h.worker.submit(make_crop(0))
    assert wait_for(lambda: h.worker.stats()["parked"].get("unavailable") == 1)
    tried = len(pr_server.lookups()) - before
    assert tried == (0 if outage == "refuse" else 3)  # first try + 2 retries
    for i in range(1, 4):
        h.worker.submit(make_crop(i))
    assert wait_for(lambda: h.worker.stats()["outbox"]["depth"] == 4)
    s = h.worker.stats()
    assert s["state"] == "unavailable" and not h.reads
    assert sum(s["errors"].values()) >= 3
    if outage == "refuse":
        pr_server.resume()
    else:
        pr_server.outage = None
    assert wait_for(lambda: len(h.reads) == 4)
    assert [r.crop.frame_seq for r in h.reads if r.crop] == [0, 1, 2, 3]
    s = h.worker.stats()
    assert s["state"] == "ok" and s["outbox"]["depth"] == 0 and s["dropped"] == {}


def test_malformed_answer_is_dropped_and_counted(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    pr_server.faults.append("malformed")
    h = harness().start()
    h.worker.submit(make_crop(0))
    h.worker.submit(make_crop(1))
    assert wait_for(lambda: len(h.reads) == 1)
    s = h.worker.stats()
    assert s["errors"] == {"bad_response": 1} and s["dropped"] == {"bad_response": 1}
    assert s["outbox"]["depth"] == 0 and h.reads[0].crop is not None and h.reads[0].crop.frame_seq == 1
    assert s["last_error"].startswith("bad_response")


def test_late_reads_are_marked(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    h = harness(max_age=2.0).start()
    h.worker.submit(make_crop(0, mono_time=time.monotonic() - 10, wall_time=time.time() - 10))
    h.worker.submit(make_crop(1))
    assert wait_for(lambda: len(h.reads) == 2)
    late = {r.crop.frame_seq: r.late for r in h.reads if r.crop}
    assert late == {0: True, 1: False}
    assert h.worker.stats()["late_reads"] == 1


def test_outbox_from_before_is_drained_at_start(pr_server: PRServer, harness: Callable[..., Harness],
                                               tmp_path: Path) -> None:
    h = harness(max_age=30.0)
    # parked before a restart of the agent in this boot: capture times are kept, so the first two
    # are fresh and the third (300 s old) is late; the fourth was parked in another boot: late
    for i in range(2):
        h.outbox.put(make_crop(i))
    h.outbox.put(make_crop(2, mono_time=time.monotonic() - 300))
    other = Outbox(tmp_path / "outbox.sqlite3", boot_id=lambda: "another-boot")
    other.put(make_crop(3, wall_time=time.time() + 3600))  # and the clock now is an hour behind it
    other.close()
    h.start()
    assert wait_for(lambda: len(h.reads) == 4)
    late = {r.crop.frame_seq: r.late for r in h.reads if r.crop}
    assert late == {0: False, 1: False, 2: True, 3: True}
    assert h.outbox.depth() == 0


def test_submit_never_blocks_and_counts_drops(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    h = harness(queue_size=2)  # not started: nothing drains the queue
    t0 = time.monotonic()
    assert [h.worker.submit(make_crop(i)) for i in range(4)] == [True, True, False, False]
    assert time.monotonic() - t0 < 0.1
    assert h.worker.stats()["dropped"] == {"queue_full": 2}


def test_close_parks_what_is_queued(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    h = harness()
    for i in range(3):
        h.worker.submit(make_crop(i))
    h.stop.set()
    h.worker.run()  # returns at once: stop is set; the queue goes to the outbox
    assert h.outbox.depth() == 3 and not pr_server.lookups()
    assert h.worker.stats()["parked"] == {"shutdown": 3}


def test_close_is_idempotent_and_stops_the_thread(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    h = harness().start()
    h.worker.close()
    h.worker.close()
    assert wait_for(lambda: not any(t.name == "reader" and t.is_alive() for t in threading.enumerate()), 2.0)
    assert not h.worker.submit(make_crop(0))


def test_usage_polled_and_quota_warning(
    pr_server: PRServer, harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pr_server.total_calls, pr_server.calls = 10, 9
    h = harness(usage_poll_s=0.2).start()
    assert wait_for(lambda: h.worker.stats()["usage"] is not None)
    assert h.worker.stats()["usage"]["calls"] == 9 and h.worker.stats()["usage"]["limit"] == 10
    # the warning follows the stats on the reader's thread: wait for it
    assert wait_for(lambda: any("90% of the lookup quota" in r.getMessage() for r in caplog.records))
    assert wait_for(lambda: sum(r.path == "/v1/statistics/" for r in pr_server.requests) >= 2, 2.0)


def test_sdk_usage_from_info(pr_sdk_server: PRServer, tmp_path: Path) -> None:
    h = Harness(pr_sdk_server, tmp_path, sdk=True, usage_poll_s=60.0).start()
    try:
        h.worker.submit(make_crop(0))
        assert wait_for(lambda: len(h.reads) == 1 and h.worker.stats()["usage"] is not None)
        assert h.worker.stats()["usage"]["version"] == "1.3.8"
        assert [r.path for r in pr_sdk_server.requests if r.method == "GET"] == ["/info/"]
    finally:
        h.close()


def test_callback_errors_do_not_kill_the_thread(pr_server: PRServer, tmp_path: Path) -> None:
    cfg = reader_cfg(pr_server.url)
    reader = CloudReader(cfg, token=PR_TOKEN)
    seen: list[int] = []

    def on_answer(crop: PlateCrop, reads: Sequence[PlateRead]) -> None:
        seen.append(len(reads))
        raise RuntimeError("downstream broke")

    worker = ReadWorker(reader, None, cfg, on_answer, threading.Event())
    worker.start()
    try:
        worker.submit(make_crop(0))
        worker.submit(make_crop(1))
        assert wait_for(lambda: seen == [1, 1])
    finally:
        worker.close()
        reader.close()


def test_close_does_not_wait_for_a_slow_upload(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    pr_server.outage, pr_server.slow_s = "slow", 3.0
    h = harness(timeout_read_s=5.0).start()
    h.worker.submit(make_crop(0))
    assert wait_for(lambda: len(pr_server.lookups()) == 1)
    for i in range(1, 4):
        h.worker.submit(make_crop(i))
    t0 = time.monotonic()
    h.worker.close(timeout_s=0.3)
    assert time.monotonic() - t0 < 1.0
    assert h.outbox.depth() == 3  # the queue is safe; only the crop in flight is at risk


def test_thread_survives_an_internal_error(pr_server: PRServer, harness: Callable[..., Harness]) -> None:
    h = harness()
    real_peek, calls = h.outbox.peek, [0]

    def flaky_peek() -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("disk hiccup")
        return real_peek()

    h.outbox.peek = flaky_peek  # type: ignore[method-assign]
    h.start()
    assert wait_for(lambda: h.worker.stats()["errors"].get("internal") == 1)
    h.worker.submit(make_crop(0))
    assert wait_for(lambda: len(h.reads) == 1, 3.0)
