"""Stage 1, per camera: a capture thread keeps only the newest frame in a latest-frame slot.

The pipeline takes frames with ``latest()`` and never sees one older than the newest, so latency
never builds up; overwritten frames are counted as dropped. The capture reconnects with capped
exponential backoff plus jitter and abandons reads that hang (a frozen RTSP server) by reopening.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np

from ..backoff import backoff_s
from ..config import CameraConfig
from ..errors import SourceError
from ..stagetime import StageTimes
from .backend import make_source
from .opencv import EndOfStream, FrameSource
from ..types import Frame, Image

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5  # first retry after 0.25-0.5 s, then doubling up to reconnect_max_s
JOIN_S = 2.0  # close() waits this long in all for the threads
MAX_STUCK_READERS = 3  # abandoned reads still blocked; beyond this, wait instead of reopening
FPS_WINDOW_S = 2.0


def check_image(image: Any) -> Image | None:
    """The image if it is a usable BGR frame (H x W x 3, uint8, not empty), else None."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        return None
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return None
    return image


class _SlowRead(SourceError):
    """A read returned, but later than read_timeout_s."""


@dataclass(eq=False)
class _Worker:
    """One connection: the reading thread and what the supervisor needs to know about it."""

    gen: int
    thread: threading.Thread | None = None
    busy_op: str = ""  # "open" | "read" while blocked in the source, else ""
    busy_since: float = 0.0
    outcome: str = ""  # "" while running, then "failed" | "ended" | "stopped"
    error: str = ""
    delivered: bool = False  # at least one good frame on this connection


class Capture:
    """Owns one camera: a supervisor thread ``capture-<id>`` and a reader per connection.

    Each connection gets a fresh source from ``source_factory`` and a reader thread that opens,
    reads and closes it; nothing else touches that source. When a read or open outlives its
    timeout, the supervisor retires the reader (it releases its own source whenever the blocked
    call returns) and starts a new connection: it never releases a capture another thread is in.
    """

    def __init__(
        self,
        cfg: CameraConfig,
        stop: threading.Event,
        *,
        source_factory: Callable[[], FrameSource] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        tick_s: float = 0.2,
        times: StageTimes | None = None,
    ) -> None:
        self.cfg = cfg
        self.times = times or StageTimes()  # "decode": the capture thread's read (demux, decode, convert)
        self.camera_id = cfg.id
        self._stop = stop
        self._factory = source_factory if source_factory is not None else (lambda: make_source(cfg))
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng
        self._tick_s = tick_s
        self._cond = threading.Condition()
        # everything below is guarded by _cond
        self._frame: Frame | None = None
        self._seq = 0
        self._taken_seq = 0
        self._counts = {"frames": 0, "dropped": 0, "corrupt": 0, "reconnects": 0, "stalls": 0}
        self._connected = False
        self._ended = False
        self._closed = False
        self._last_frame_mono: float | None = None
        self._last_error = ""
        self._recent: deque[float] = deque(maxlen=64)
        self._gen = 0
        self._workers: list[_Worker] = []
        self._thread: threading.Thread | None = None
        self._beat = time.monotonic()  # the supervisor's heartbeat, for the service's watchdog

    # ------------------------------------------------------------ consumer side

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._supervise, name=f"capture-{self.camera_id}", daemon=True)
        self._thread.start()

    def latest(self, after_seq: int = 0, timeout: float = 1.0) -> Frame | None:
        """The newest frame if its seq is above ``after_seq``, waiting up to ``timeout`` for one.

        Returns None on timeout, or at once when the capture has ended or is closed.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._newer(after_seq) or self._ended or self._closed, timeout)
            frame = self._frame
            if frame is None or frame.seq <= after_seq:
                return None
            self._taken_seq = max(self._taken_seq, frame.seq)
            return frame

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_progress(self) -> float:
        """time.monotonic() of the supervisor's last turn (it turns every tick_s, waits included)."""
        return self._beat

    @property
    def supervising(self) -> bool:
        """The supervisor thread runs (False before start, after close, at the end of a file)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def ended(self) -> bool:
        """A file source reached its end (``loop`` off): no more frames will come."""
        return self._ended

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        with self._cond:
            recent = [t for t in self._recent if now - t <= FPS_WINDOW_S]
            span = recent[-1] - recent[0] if len(recent) >= 2 else 0.0
            return {
                **self._counts,
                "connected": self._connected,
                "ended": self._ended,
                "seq": self._seq,
                "last_frame_mono": self._last_frame_mono,
                "fps_in": round((len(recent) - 1) / span, 2) if span > 0 else 0.0,
                "last_error": self._last_error,
            }

    def close(self) -> None:
        """Stop capturing; joins the threads for up to ~2 s. Idempotent."""
        with self._cond:
            self._closed = True
            self._gen += 1  # retires the current reader
            self._connected = False
            threads = [t for t in [self._thread, *(w.thread for w in self._workers)] if t is not None]
            self._cond.notify_all()
        deadline = time.monotonic() + JOIN_S
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:  # a read blocked inside the backend; its thread releases the source on return
            logger.warning("camera=%s event=close_incomplete threads=%s", self.camera_id, ",".join(left))

    def _newer(self, after_seq: int) -> bool:
        return self._frame is not None and self._frame.seq > after_seq

    # ------------------------------------------------------------ supervisor thread

    def _halted(self) -> bool:
        return self._closed or self._stop.is_set()

    def _pause(self, seconds: float) -> bool:
        """Wait on the shared stop event (in short slices, so close() is seen too); True = halt.

        A pause is real time whatever the injected clock says, so it uses time.monotonic.
        """
        deadline = time.monotonic() + seconds
        supervisor = threading.current_thread() is self._thread
        while not self._halted():
            if supervisor:
                self._beat = time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, self._tick_s))
        return True

    def _supervise(self) -> None:
        attempt = 0
        try:
            while not self._halted():
                if self._stuck_readers() >= MAX_STUCK_READERS:  # a driver that never returns
                    logger.error("camera=%s event=readers_stuck count=%d", self.camera_id, MAX_STUCK_READERS)
                    if self._pause(self.cfg.reconnect_max_s):
                        break
                    continue
                worker = self._start_worker()
                outcome = self._watch(worker)
                if outcome in ("ended", "stopped"):
                    break
                if worker.delivered:  # it was up: retry soon, then back off again
                    attempt = 0
                delay = backoff_s(attempt, BACKOFF_BASE_S, self.cfg.reconnect_max_s, self._rng)
                attempt += 1
                logger.warning(
                    "camera=%s event=%s error=%s retry_in_s=%.2f",
                    self.camera_id,
                    outcome,
                    worker.error or "-",
                    delay,
                )
                if self._pause(delay):
                    break
                with self._cond:
                    self._counts["reconnects"] += 1
        except Exception:
            logger.exception("camera=%s event=capture_crashed", self.camera_id)
        finally:
            with self._cond:
                self._gen += 1
                self._connected = False
                self._cond.notify_all()

    def _stuck_readers(self) -> int:
        with self._cond:
            return sum(1 for w in self._workers if w.thread is not None and w.thread.is_alive())

    def _start_worker(self) -> _Worker:
        with self._cond:
            self._gen += 1
            worker = _Worker(self._gen)
            self._workers = [w for w in self._workers if w.thread is not None and w.thread.is_alive()]
            self._workers.append(worker)
            worker.thread = threading.Thread(
                target=self._read_loop, args=(worker,), name=f"capture-{self.camera_id}-r{worker.gen}", daemon=True
            )
        worker.thread.start()
        return worker

    def _watch(self, worker: _Worker) -> str:
        """Wait until the reader ends, or retire it when a blocking call outlives its timeout."""
        open_limit = 1.5 * self.cfg.open_timeout_s + 1.0  # FFmpeg's own timeout fires first
        while not self._pause(self._tick_s):
            with self._cond:
                if worker.outcome:
                    return worker.outcome
                op, since = worker.busy_op, worker.busy_since
                limit = self.cfg.read_timeout_s if op == "read" else open_limit
                if op and self._clock() - since > limit:
                    self._gen += 1  # the reader is now stale: it cleans up when its call returns
                    self._connected = False
                    self._counts["stalls"] += 1
                    worker.error = f"{op} blocked for more than {limit:g} s"
                    self._last_error = worker.error
                    return "stalled"
        return "stopped"

    # ------------------------------------------------------------ reader threads

    def _stale(self, worker: _Worker) -> bool:
        return worker.gen != self._gen or self._halted()

    def _busy(self, worker: _Worker, op: str) -> float:
        worker.busy_since = now = self._clock()
        worker.busy_op = op
        return now

    def _read_loop(self, worker: _Worker) -> None:
        source: FrameSource | None = None
        outcome, error = "stopped", ""
        try:
            source = self._factory()
            self._busy(worker, "open")
            source.open()
            self._busy(worker, "")
            outcome = self._pump(worker, source)
        except EndOfStream:
            outcome = "ended"
        except _SlowRead as err:
            outcome, error = "stalled", str(err)
        except SourceError as err:
            outcome, error = "failed", str(err)
        except Exception as err:  # the one catch-all of this thread
            logger.exception("camera=%s event=reader_crashed", self.camera_id)
            outcome, error = "failed", f"internal error: {type(err).__name__}"
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:
                    logger.exception("camera=%s event=close_failed", self.camera_id)
            with self._cond:
                worker.outcome, worker.error = outcome, error
                if worker.gen == self._gen:
                    self._connected = False
                    if error:
                        self._last_error = error
                    if outcome == "stalled":
                        self._counts["stalls"] += 1
                    if outcome == "ended":
                        self._ended = True
                        logger.info("camera=%s event=ended frames=%d", self.camera_id, self._counts["frames"])
                self._cond.notify_all()

    def _pump(self, worker: _Worker, source: FrameSource) -> str:
        """Read until the connection fails, ends or this reader is retired."""
        interval = float(getattr(source, "frame_interval_s", 0.0) or 0.0)
        # a stream that only yields undecodable frames is as dead as a silent one
        no_frame_limit = max(self.cfg.read_timeout_s, 3.0 * interval)
        due = last_good = self._clock()
        while not self._stale(worker):
            if interval > 0:
                if self._pause(due - self._clock()):
                    break
                due = max(due + interval, self._clock() - 1.0)  # behind by > 1 s: do not burst
            started = self._busy(worker, "read")
            with self.times.measure("decode"):
                image = source.read()
            now = self._busy(worker, "")
            if now - started > self.cfg.read_timeout_s:
                # FFmpeg's own read timeout returns about when ours expires, often with a last
                # half-decoded frame: a read this slow is a stall even though it came back
                raise _SlowRead(f"read took {now - started:.1f} s")
            good = self._publish(worker, image, now)
            if good is None:
                break
            if good:
                last_good = now
            elif now - last_good > no_frame_limit:
                raise SourceError(f"no decodable frame for {no_frame_limit:g} s")
        return "stopped"

    def _publish(self, worker: _Worker, image: Any, now: float) -> bool | None:
        """Put a frame in the slot; False when it is unusable, None when this reader is stale."""
        usable = check_image(image)
        first = False
        with self._cond:
            if self._stale(worker):
                return None
            if usable is None:
                self._counts["corrupt"] += 1
                return False
            if self._frame is not None and self._frame.seq > self._taken_seq:
                self._counts["dropped"] += 1
            self._seq += 1
            self._frame = Frame(self.camera_id, usable, self._seq, self._wall(), now)
            self._counts["frames"] += 1
            self._last_frame_mono = now
            self._recent.append(now)
            first = not worker.delivered
            worker.delivered = True
            self._connected = True
            self._cond.notify_all()
        if first:
            h, w = usable.shape[:2]
            logger.info("camera=%s event=connected size=%dx%d", self.camera_id, w, h)
        return True


__all__ = ["Capture", "check_image"]
