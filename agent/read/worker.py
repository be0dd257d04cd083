"""The ``reader`` thread: crops in (bounded, never blocking), one answer per crop out via ``on_answer``.

Paces uploads with a token bucket, waits out 429s, pauses after a 403, shrinks after a 413, retries
5xx/timeouts with capped backoff and then parks crops in the durable outbox, which it drains (oldest
first) when the service answers again. Fresh crops go first: they can still open the gate.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ..backoff import backoff_s
from ..config import ReaderConfig
from ..late import crop_too_late
from ..types import PlateCrop, PlateRead
from . import Answer, PlateReader
from .errors import Forbidden, ReaderError, Throttled, TooLarge, Unavailable, error_kind
from .limits import TokenBucket, shrink_jpeg
from .pause import Pause
from .outbox import Outbox, OutboxError

logger = logging.getLogger(__name__)

POLL_S = 0.1  # how often a long wait looks at the stop events
MAX_THROTTLE_RETRIES = 5  # 429s in a row for one crop before it is parked


class ReadWorker:
    """Owns the reader, the limiter and the outbox from its own thread; ``submit`` from any thread."""

    def __init__(
        self,
        reader: PlateReader,
        outbox: Outbox | None,
        cfg: ReaderConfig,
        on_answer: Answer,
        stop: threading.Event | None = None,
        *,
        max_decision_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._reader = reader
        self._outbox = outbox
        self.cfg = cfg
        self._on_answer = on_answer
        self._stop = stop or threading.Event()
        self._max_age = max_decision_age_s
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._q: queue.Queue[PlateCrop] = queue.Queue(maxsize=cfg.queue_size)
        self._bucket = TokenBucket(cfg.rate_per_s, clock)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None  # the one running run(), ours or the service's
        self._done = threading.Event()
        self._lock = threading.Lock()  # guards the counters below for stats() and submit()
        self._pause = Pause(cfg, clock, wall, self._backoff)
        self._next_usage = 0.0
        self._c: collections.Counter[str] = collections.Counter()
        self._errors: collections.Counter[str] = collections.Counter()
        self._parked: collections.Counter[str] = collections.Counter()
        self._dropped: collections.Counter[str] = collections.Counter()
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._usage: dict[str, Any] | None = None
        self._reachable: bool | None = None  # the last upload or usage poll was answered and accepted
        self._outbox_failing = False  # logged once per streak of outbox errors
        self._undeleted: set[int] = set()  # outbox ids delivered whose delete failed: never read again
        self.last_progress = clock()  # the service's watchdog checks that this moves

    # ------------------------------------------------------------ any thread

    def start(self) -> None:
        """Run on a new daemon thread named ``reader`` (or give ``run`` to a thread of your own)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="reader", daemon=True)
            self._thread.start()

    def submit(self, crop: PlateCrop) -> bool:
        """Queue a crop for reading; False (counted) when the queue is full or closing."""
        with self._lock:
            self._c["submitted"] += 1
            if self._halt.is_set():
                self._dropped["closed"] += 1
                return False
            try:
                self._q.put_nowait(crop)
            except queue.Full:
                self._dropped["queue_full"] += 1
                return False
        return True

    def idle(self) -> bool:
        """Every crop submitted was read, parked or dropped (the outbox may still hold crops)."""
        return self._q.unfinished_tasks == 0

    def stats(self) -> dict[str, Any]:
        depth: int | None = None
        oldest: float | None = None
        if self._outbox is not None:
            try:
                depth, oldest = self._outbox.depth(), self._outbox.oldest_age_s()
            except OutboxError:
                pass
        with self._lock:
            return {
                "state": self._pause.state or "ok",
                "alive": self._thread is None or self._thread.is_alive(),
                "submitted": self._c["submitted"],
                "queued": self._q.qsize(),
                "uploads": self._c["uploads"],
                "crops_read": self._c["crops_read"],
                "reads": self._c["reads"],
                "late_reads": self._c["late_reads"],
                "throttled": self._c["throttled"],
                "errors": dict(self._errors),
                "parked": dict(self._parked),
                "dropped": dict(self._dropped),
                "forbidden_until": self._pause.forbidden_until,
                "outbox": {
                    "depth": depth,
                    "oldest_age_s": oldest,
                    "evicted": self._outbox.dropped if self._outbox else 0,
                    **(self._outbox.storage() if self._outbox is not None else {}),
                },
                "last_success": self._last_success,
                "last_error": self._last_error,
                "reachable": self._reachable,
                "usage": self._usage,
            }

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop the thread and park what is queued; idempotent. The caller closes reader and outbox.

        Waits up to ``timeout_s`` for an upload in flight; after that the queue is parked from here
        and only the crop of that upload can be lost (it is re-sent if it was taken from the outbox).
        """
        self._halt.set()
        t = self._thread
        if t is None or t is threading.current_thread() or self._done.wait(timeout_s):
            if t is None:
                self._park_queue("shutdown")
            return
        logger.warning("reader: an upload is still in flight at shutdown; parking the queue")
        try:
            self._park_queue("shutdown")
        except OutboxError as err:
            logger.error("reader: could not park queued crops at shutdown: %s", err)

    # ------------------------------------------------------------ reader thread

    def _halted(self) -> bool:
        return self._halt.is_set() or self._stop.is_set()

    def _wait(self, seconds: float) -> bool:
        """Pause for ``seconds`` unless stopped; True when the full pause elapsed."""
        end = self._clock() + seconds
        while not self._halted():
            self.last_progress = self._clock()
            left = end - self._clock()
            if left <= 0:
                return True
            self._halt.wait(min(left, POLL_S))
        return False

    def run(self) -> None:
        """The thread body: until ``stop`` or ``close``; parks whatever is still queued on the way out."""
        if self._thread is None:
            self._thread = threading.current_thread()
        elif self._thread is not threading.current_thread():
            raise RuntimeError("ReadWorker.run: already running on another thread")
        try:
            self._announce_backlog()
            while not self._halted():
                self.last_progress = self._clock()
                try:
                    self._step()
                    self._outbox_failing = False
                except OutboxError as err:  # a bad disk: fresh crops are still read, the outbox waits
                    if not self._outbox_failing:
                        logger.error("reader: outbox failing, reading goes on without it: %s", err)
                    self._outbox_failing = True
                    with self._lock:
                        self._errors["outbox"] += 1
                    self._halt.wait(POLL_S)
                except Exception:  # the thread's one catch-all: log, count, carry on
                    logger.exception("reader: step failed")
                    with self._lock:
                        self._errors["internal"] += 1
                    self._halt.wait(1.0)
        finally:
            try:
                self._park_queue("shutdown")
            except Exception:
                logger.exception("reader: could not park queued crops at shutdown")
            self._done.set()

    def _announce_backlog(self) -> None:
        try:
            depth = self._outbox.depth() if self._outbox is not None else 0
        except OutboxError as err:
            logger.error("reader: cannot count the outbox: %s", err)
            return
        if depth:
            logger.info("reader: outbox holds %d crops from before; draining", depth)

    def _step(self) -> None:
        self._poll_usage()
        now = self._clock()
        if self._pause.state:
            self._park_queue(self._pause.state)
            if now < self._pause.resume_at:
                self._halt.wait(min(POLL_S, self._pause.resume_at - now))
                return
            head = self._head()
            crop = None if head is not None else self._next_fresh(POLL_S)
            if head is not None:
                self._process(head[1], head[0])  # the probe: does the service answer again?
            elif crop is not None:
                self._process(crop, None)
            return
        crop = self._next_fresh(0.0)
        if crop is not None:  # fresh crops first: they can still open the gate
            self._process(crop, None)
            return
        head = self._head()
        if head is not None:
            self._process(head[1], head[0])
            return
        crop = self._next_fresh(POLL_S * 2)
        if crop is not None:
            self._process(crop, None)

    def _head(self) -> tuple[int, PlateCrop] | None:
        """The oldest parked crop not yet delivered. Deletes that failed after a delivery come
        first; while they still fail (disk full) the outbox waits and fresh crops go on."""
        if self._outbox is None:
            return None
        for item_id in sorted(self._undeleted):
            try:
                self._outbox.delete(item_id)
            except OutboxError:
                return None  # logged when it first failed
            self._undeleted.discard(item_id)
            logger.info("reader: a delivered crop left the outbox at last id=%d", item_id)
        return self._outbox.peek()

    def _next_fresh(self, block_s: float) -> PlateCrop | None:
        """The next queued crop still young enough to decide on; older ones go to the outbox."""
        while True:
            try:
                crop = self._q.get(timeout=block_s) if block_s > 0 else self._q.get_nowait()
            except queue.Empty:
                return None
            if self._outbox is None or not self._is_late(crop):
                return crop  # task_done() once processed: see _process
            try:
                self._park(crop, None, "stale")  # read after the fresh ones, from the outbox
            finally:
                self._q.task_done()
            block_s = 0.0

    def _park_queue(self, reason: str) -> None:
        """Everything queued into the outbox (any thread); without one, the queue's bound applies."""
        if self._outbox is None:
            return
        while True:
            try:
                crop = self._q.get_nowait()
            except queue.Empty:
                return
            try:
                self._park(crop, None, reason)
            finally:
                self._q.task_done()

    def _is_late(self, crop: PlateCrop) -> bool:
        return crop_too_late(crop, self._clock(), self._max_age)

    def _backoff(self, n: int) -> float:
        """Delay before retry ``n`` (1-based) or after the ``n``-th failure in a row."""
        return backoff_s(n - 1, self.cfg.backoff_initial_s, self.cfg.backoff_max_s, self._rand)

    # ------------------------------------------------------------ one crop

    def _process(self, crop: PlateCrop, item_id: int | None) -> None:
        try:
            self._process_one(crop, item_id)
        finally:
            if item_id is None:  # a fresh crop taken from the queue is finished
                self._q.task_done()

    def _process_one(self, crop: PlateCrop, item_id: int | None) -> None:
        """Read one crop (fresh when ``item_id`` is None, else the outbox head) and act on the outcome."""
        retries = self.cfg.retries if item_id is None and not self._pause.state else 0
        orig = crop  # the pipeline knows its crops by identity; a 413 makes a smaller copy
        attempt = throttles = 0
        shrunk = False
        while True:
            if not self._wait(self._bucket.delay()):
                if item_id is None:
                    self._park(orig, None, "shutdown")
                return
            self._bucket.take()
            try:
                with self._lock:
                    self._c["uploads"] += 1
                reads = self._reader.read(crop)
            except ReaderError as err:
                self._note_error(err)
                if isinstance(err, Throttled):
                    throttles += 1
                    self._bucket.hold(err.retry_after_s)
                    if throttles <= MAX_THROTTLE_RETRIES:
                        continue
                    self._park(orig, item_id, "throttled")
                elif isinstance(err, TooLarge) and not shrunk:
                    smaller = shrink_jpeg(crop.jpeg)
                    if smaller is not None:
                        crop, shrunk = dataclasses.replace(crop, jpeg=smaller), True
                        continue
                    self._drop(orig, item_id, "too_large")
                elif isinstance(err, Forbidden):
                    self._pause.forbidden(err)
                    self._park(orig, item_id, "forbidden")
                elif isinstance(err, Unavailable):
                    if attempt < retries:
                        attempt += 1
                        if self._wait(self._backoff(attempt)):
                            continue
                    self._pause.unavailable(err)
                    self._park(orig, item_id, "unavailable")
                else:  # BadResponse, Rejected, a second 413: sending it again will not help
                    self._drop(orig, item_id, error_kind(err))
                return
            self._succeed(orig, item_id, reads)
            return

    def _succeed(self, crop: PlateCrop, item_id: int | None, reads: list[PlateRead]) -> None:
        self._pause.end()
        late = self._is_late(crop)
        with self._lock:
            self._c["crops_read"] += 1
            self._c["reads"] += len(reads)
            self._c["late_reads"] += len(reads) if late else 0
            self._last_success = self._wall()
            self._reachable = True
        if late:
            reads = [dataclasses.replace(r, late=True) for r in reads]
        self._deliver(crop, reads)
        if item_id is not None and self._outbox is not None:
            # after delivery: a crash in between reads and delivers the crop again after the
            # restart (at least once, never lost)
            try:
                self._outbox.delete(item_id)
            except OutboxError as err:
                self._undeleted.add(item_id)
                logger.error("reader: could not delete a delivered crop from the outbox: %s", err)
                with self._lock:
                    self._errors["outbox"] += 1

    def _deliver(self, crop: PlateCrop, reads: list[PlateRead] | None) -> None:
        """``reads`` None: no answer (parked or dropped), which is not "no plate found"."""
        try:
            self._on_answer(crop, reads)
        except Exception:
            logger.exception("reader: answer callback failed")

    def _park(self, crop: PlateCrop, item_id: int | None, reason: str) -> None:
        if item_id is not None:
            return  # already in the outbox, and stays at its head
        if reason != "shutdown":
            self._deliver(crop, None)  # no answer now: the pipeline may try another frame
        if self._outbox is None:
            with self._lock:
                self._dropped["no_outbox"] += 1
            return
        try:
            self._outbox.put(crop)
        except OutboxError as err:
            logger.error("reader: could not park a crop: %s", err)
            with self._lock:
                self._dropped["outbox_error"] += 1
            return
        with self._lock:
            self._parked[reason] += 1

    def _drop(self, crop: PlateCrop, item_id: int | None, reason: str) -> None:
        if item_id is None:
            self._deliver(crop, None)
        elif self._outbox is not None:
            self._outbox.delete(item_id)  # a poison entry must not block the head forever
        with self._lock:
            self._dropped[reason] += 1

    def _note_error(self, err: ReaderError) -> None:
        kind = error_kind(err)
        with self._lock:
            self._errors[kind] += 1
            if isinstance(err, Throttled):
                self._c["throttled"] += 1
            self._last_error = f"{kind}: {err}"
            self._reachable = not isinstance(err, (Unavailable, Forbidden))
        if isinstance(err, (Throttled, Unavailable, Forbidden)):
            logger.debug("reader: %s", err)
        else:
            logger.warning("reader: read failed: kind=%s %s", kind, err)

    def _poll_usage(self) -> None:
        if self.cfg.usage_poll_s <= 0 or self._clock() < self._next_usage:
            return
        self._next_usage = self._clock() + self.cfg.usage_poll_s
        try:
            usage = self._reader.usage()
        except ReaderError as err:
            with self._lock:
                self._errors["usage"] += 1
                self._last_error = f"usage: {error_kind(err)}: {err}"
                self._reachable = not isinstance(err, (Unavailable, Forbidden))
            logger.info("reader: usage poll failed: %s", err)
            return
        with self._lock:
            self._reachable = True
        if usage is None:
            return
        with self._lock:
            self._usage = usage.as_dict()
        frac = usage.fraction
        if frac is not None and frac >= 0.9:
            logger.warning(
                "reader: %.0f%% of the lookup quota used (calls=%d limit=%s resets_on=%s)",
                frac * 100,
                usage.calls,
                usage.limit,
                usage.resets_on or "?",
            )


__all__ = ["ReadWorker"]
