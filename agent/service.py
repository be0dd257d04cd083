"""The running agent: has the wiring build every part, owns the threads, the stop event, the
supervisor loop (rules reloads, watchdog pings, status line) and the shutdown order.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2

from . import redact
from .config import Config
from .errors import AgentError
from .health import STALL_S, Report, SummaryPublisher, Watchdog
from .notify import Notifier
from .sinks import Sink
from .timebase import Timebase
from .wiring import STATUS, Closers, Parts, SourceFactory, Status, build, build_status

logger = logging.getLogger(__name__)

SHUTDOWN_JOIN_S = 3.0  # all threads together; the shutdown stays inside 5 s
STATUS_LINE_S = 10.0  # how often STATUS= is refreshed


@dataclass(frozen=True)
class Running:
    """What ``start()`` built: the parts and what watches and reports on them."""

    parts: Parts
    report: Report
    status: Status
    watchdog: Watchdog
    summary: SummaryPublisher


class Service:
    """The running agent. ``start()`` builds and starts everything; ``run()`` blocks until stopped."""

    def __init__(
        self,
        cfg: Config,
        *,
        extra_sinks: Sequence[Sink] = (),
        notifier: Notifier | None = None,
        stop: threading.Event | None = None,
        stop_when_sources_end: bool = False,
        relay_kw: Mapping[str, object] | None = None,
        source_factory: SourceFactory | None = None,
        stall_s: float = STALL_S,
        timebase: Timebase | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop or threading.Event()
        self.notifier = notifier or Notifier()
        self.extra_sinks = list(extra_sinks)
        self.stop_when_sources_end = stop_when_sources_end
        self.relay_kw = relay_kw or {}  # tests: pin_factory=MockFactory()
        self.source_factory = source_factory  # tests: a fake camera
        self.stall_s = stall_s
        self.timebase = timebase  # tests: another boot id, a clock that is not synchronised
        self.threads: list[threading.Thread] = []
        self.closers: Closers = []  # closed in reverse order
        self._running: Running | None = None
        self._reload = threading.Event()

    # ------------------------------------------------------------ what start() built

    @property
    def running(self) -> Running:
        if self._running is None:
            raise RuntimeError("Service: not started")
        return self._running

    @property
    def parts(self) -> Parts:
        return self.running.parts

    @property
    def report(self) -> Report:
        return self.running.report

    @property
    def watchdog(self) -> Watchdog:
        return self.running.watchdog

    @property
    def status(self) -> Status:
        return self.running.status

    # ------------------------------------------------------------ starting

    def start(self) -> None:
        """Build every part (``build``), then start the threads and the status server."""
        redact.guard_logs()  # from here on no log line shows a URL's secrets, whoever logs it
        running = self.build()
        self.threads = list(running.parts.threads)
        for t in self.threads:
            t.start()
        for cam in running.parts.cameras:
            cam.capture.start()
        self._start_status_server(running.status)
        self.notifier.ready(running.report.summary())
        logger.info("agent started cameras=%s reader=%s", ",".join(c.id for c in running.parts.cameras),
                    self.cfg.reader.type)

    def build(self) -> Running:
        """Build every part without starting a thread or opening a camera.

        Raises what ``start`` would refuse (AgentError subclasses), after closing what was built;
        ``check-config`` refuses the same configs (tests/test_config_verdict.py).
        """
        # per-frame work is small and each camera has its own thread: OpenCV's thread pool only
        # adds scheduling cost (measured: 0.75 -> 0.59 ms CPU per motion frame at 720p)
        cv2.setNumThreads(1)
        try:
            self._running = self._build()
        except BaseException:
            self.close()
            raise
        return self._running

    def _build(self) -> Running:
        cfg = self.cfg
        parts = build(cfg, self.stop_event, self.closers, extra_sinks=self.extra_sinks, relay_kw=self.relay_kw,
                      source_factory=self.source_factory, timebase=self.timebase)
        report = Report(parts)
        status = build_status(cfg, report.stats, report.summary, parts)
        watchdog = Watchdog(parts, status.server, stall_s=self.stall_s,
                            reader_slack_s=cfg.reader.timeout_connect_s + cfg.reader.timeout_read_s)
        summary = SummaryPublisher(parts.outputs.mqtt, status.board.document, cfg.status.mqtt_interval_s)
        return Running(parts, report, status, watchdog, summary)

    def _start_status_server(self, status: Status) -> None:
        """A status port already taken is logged, not fatal: the gate matters more than its report."""
        server = status.server
        if server is None:
            return
        try:
            server.start()
        except OSError as err:
            logger.error("status server disabled: cannot listen on %s:%d: %s",
                         self.cfg.status.bind, self.cfg.status.port, err)
            return
        self.closers.append((STATUS, server.close))  # closed first: it reads every part

    # ------------------------------------------------------------ running

    def run(self) -> int:
        """Supervise until stopped: watchdog pings while healthy, rules reloads, status line."""
        running = self.running
        parts = running.parts
        interval = self.notifier.watchdog_s / 3 if self.notifier.watchdog_s else 5.0
        interval = min(interval, 1.0)
        last_status = 0.0
        while not self.stop_event.wait(interval):
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            parts.dispatcher.tick()
            if running.watchdog.healthy():
                self.notifier.watchdog()
            running.status.board.sample({cam.id: cam.pipeline.counters["frames"] for cam in parts.cameras})
            running.summary.tick()
            if time.monotonic() - last_status >= STATUS_LINE_S:
                last_status = time.monotonic()
                self.notifier.status(running.report.summary())
            if self.stop_when_sources_end and self.drained():
                logger.info("all sources ended and every frame and read was handled")
                break
        return 0

    def drained(self) -> bool:
        """Every (file) source has ended, its last frame was processed and no read is pending."""
        parts = self.parts
        for cam in parts.cameras:
            if not cam.capture.ended or cam.pipeline.last_seq < cam.capture.stats()["seq"]:
                return False
        return parts.reader.idle()

    def request_reload(self) -> None:
        """Signal-safe: reload the access rules on the supervisor thread."""
        self._reload.set()

    def _do_reload(self) -> None:
        try:
            self.parts.rules.reload()
            logger.info("rules reloaded")
        except Exception as err:  # keep the rules we have rather than lose the gate
            logger.error("rules reload failed, keeping the previous rules: %s", err)

    def request_stop(self) -> None:
        """Signal-safe."""
        self.stop_event.set()

    # ------------------------------------------------------------ stopping

    def close(self) -> None:
        """Stop every thread and close every part, newest first. Idempotent."""
        self.notifier.stopping()
        self.stop_event.set()
        deadline = time.monotonic() + SHUTDOWN_JOIN_S
        for t in self.threads:
            if t.is_alive() or t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    logger.warning("thread did not stop in time name=%s", t.name)
        while self.closers:
            name, close = self.closers.pop()
            try:
                close()
            except Exception:
                logger.exception("close failed part=%s", name)
        self.notifier.close()


def run_service(cfg: Config, *, extra_sinks: Sequence[Sink] = (), stop_when_sources_end: bool = False) -> int:
    """Run the agent in the foreground until SIGTERM/SIGINT (SIGHUP reloads the rules); the exit code."""
    service = Service(cfg, extra_sinks=extra_sinks, stop_when_sources_end=stop_when_sources_end)
    signal.signal(signal.SIGTERM, lambda *_: service.request_stop())
    signal.signal(signal.SIGINT, lambda *_: service.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: service.request_reload())
    log_config_warnings(cfg)
    try:
        service.start()
        return service.run()
    except AgentError as err:
        logger.error("cannot run: %s", err)
        return 1
    finally:
        service.close()
        logger.info("agent stopped")


def log_config_warnings(cfg: Config) -> None:
    """Warn about files other users can read that may hold secrets or access lists."""
    paths = [cfg.path, cfg.rules.file]
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and os.path.isdir(cred_dir):
        paths += [os.path.join(cred_dir, n) for n in os.listdir(cred_dir)]
    for p in paths:
        try:
            if p and os.stat(p).st_mode & 0o004:
                logger.warning("file is world-readable path=%s (chmod o-r)", p)
        except OSError:
            pass
