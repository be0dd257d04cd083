"""Gate relay sink: an "open" decision -> one pulse (on, then off after pulse_s, guaranteed).

Backends: ``gpio`` (gpiozero OutputDevice) and ``serial`` (pyserial ``serial_for_url``; LCUS, AT or
raw frames). The relay is driven off at start (which also covers a restart after a crash), on close,
and by its own timer thread, which never lets it stay on longer than ``max_on_s``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Protocol, TextIO
from collections.abc import Callable

from ..backoff import backoff_s
from ..config import RelayConfig, hex_frame
from ..errors import SinkError
from ..events import iso
from ..late import moves_gate
from ..types import Decision

logger = logging.getLogger(__name__)

RETRY_OFF_S = 0.1  # a failed "off" is retried after this, then less often (backoff) until it works
RETRY_OFF_MAX_S = 2.0  # ... up to this: a board back from a USB reset is switched off within 2 s
PROBE_S = 2.0  # while off, a serial board is checked this often (no bytes sent): an unplugged one is noticed
SAFETY_POLL_S = 0.5  # while on, the timer thread re-checks max_on_s at least this often


class RelayDriver(Protocol):
    def open(self) -> None: ...
    def set(self, on: bool) -> None: ...
    def probe(self) -> bool: ...
    def close(self) -> None: ...


class GpioRelay:
    """A relay on a GPIO pin (gpiozero); ``pin_factory`` is injectable (MockFactory in tests)."""

    def __init__(self, cfg: RelayConfig, pin_factory: Any = None) -> None:
        self._cfg = cfg
        self._factory = pin_factory
        self._dev: Any = None

    def open(self) -> None:
        from gpiozero import GPIOZeroError, OutputDevice

        pin: int | str = int(self._cfg.pin) if self._cfg.pin.isdigit() else self._cfg.pin
        try:
            self._dev = OutputDevice(pin, active_high=self._cfg.active_high, initial_value=False,
                                     pin_factory=self._factory)
        except (GPIOZeroError, OSError) as err:
            raise SinkError(f"relay: cannot use GPIO pin {self._cfg.pin}: {err}") from err

    def set(self, on: bool) -> None:
        from gpiozero import GPIOZeroError

        try:
            self._dev.on() if on else self._dev.off()
        except (GPIOZeroError, OSError, AttributeError) as err:
            raise SinkError(f"relay: GPIO write failed: {err}") from err

    def probe(self) -> bool:
        """A GPIO line cannot be unplugged: nothing to check (False: no check made)."""
        return False

    def close(self) -> None:
        if self._dev is not None:
            try:
                self.set(False)
            finally:
                self._dev.close()
                self._dev = None


def frame(cfg: RelayConfig, on: bool) -> bytes:
    """The bytes that switch the relay for the configured serial protocol."""
    if cfg.protocol == "lcus":  # CH340 "LCUS" boards: A0 <channel> <state> <checksum>
        state = 1 if on else 0
        return bytes([0xA0, cfg.channel, state, (0xA0 + cfg.channel + state) & 0xFF])
    if cfg.protocol == "at":  # CP210x boards
        return f"AT+CH{cfg.channel}={1 if on else 0}\r\n".encode("ascii")
    raw = hex_frame(cfg.on_bytes if on else cfg.off_bytes)
    if raw is None:  # refused by the config check; a hand-built RelayConfig may still get here
        raise SinkError(f"relay {'on' if on else 'off'}_bytes: hex bytes required for protocol = \"raw\"")
    return raw


class SerialRelay:
    """A USB/serial relay board; ``port`` may be any pyserial URL (``loop://`` in tests).

    A failed write closes the port and the next ``set`` opens it again: a board that was unplugged
    and plugged back in comes back under the same device name, never under the dead handle.
    """

    def __init__(self, cfg: RelayConfig, serial_for_url: Callable[..., Any] | None = None) -> None:
        self._cfg = cfg
        self._open_url = serial_for_url
        self._port: Any = None
        self._active = False  # opened and not closed: a lost port is reopened by set()

    def open(self) -> None:
        import serial

        opener = self._open_url or serial.serial_for_url
        try:
            self._port = opener(self._cfg.port, baudrate=self._cfg.baud, timeout=1.0, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as err:
            raise SinkError(f"relay: cannot open serial port {self._cfg.port}: {err}") from err
        self._active = True

    def set(self, on: bool) -> None:
        import serial

        if self._port is None:
            if not self._active:
                raise SinkError("relay: serial port not open")
            self.open()
        try:
            self._port.write(frame(self._cfg, on))
            self._port.flush()  # on the wire before we call it on/off (4 bytes at 9600 baud: ~4 ms)
        except (serial.SerialException, OSError) as err:
            self._drop_port()
            raise SinkError(f"relay: serial write failed on {self._cfg.port}: {err}") from err

    def probe(self) -> bool:
        """Raise SinkError when the board is gone (reopening it first when it was lost); sends nothing.
        A USB board that was unplugged answers every ioctl with EIO."""
        import serial

        if self._port is None:
            if not self._active:
                return False
            self.open()
        try:
            self._port.in_waiting  # noqa: B018  (the ioctl is the check)
        except (serial.SerialException, OSError) as err:
            self._drop_port()
            raise SinkError(f"relay: serial port {self._cfg.port} lost: {err}") from err
        return True

    def _drop_port(self) -> None:
        import serial

        port, self._port = self._port, None
        try:
            port.close()
        except (serial.SerialException, OSError):
            pass

    def close(self) -> None:
        if not self._active:
            return
        try:
            self.set(False)
        finally:
            self._active = False
            if self._port is not None:
                self._drop_port()


RELAYS: dict[str, type[GpioRelay] | type[SerialRelay]] = {"gpio": GpioRelay, "serial": SerialRelay}


class Gate:
    """The relay sink. ``pulse`` switches on in the caller's thread (fast); the ``relay`` thread
    switches off. State listeners (e.g. MQTT gate state) are called outside the lock."""

    def __init__(self, cfg: RelayConfig, driver: RelayDriver, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._cfg = cfg
        self._driver = driver
        self._clock = clock
        self._wall = wall
        self._cond = threading.Condition()
        self._on = False
        self._on_since = 0.0
        self._off_at = 0.0
        self._last_start = float("-inf")
        self._last_pass = ""
        self._listeners: list[Callable[[bool], None]] = []
        self._thread: threading.Thread | None = None
        self._started = self._closed = False
        self._changed = False  # switched off by the timer; listeners not told yet
        self._failures = 0  # failed writes or checks in a row (logged once, not at every retry)
        self._failing_since: float | None = None  # first failure of this streak: the relay is not answering
        self._owed_off = False  # the board went away while off: its state is unknown until an off lands
        self._next_probe = float("-inf")
        self._last_error = ""
        self._last: dict[str, Any] = {}
        self._counts = dict.fromkeys(
            ("pulses", "skipped_cooldown", "skipped_busy", "skipped_same_pass", "skipped_failing", "forced_off",
             "errors"), 0)

    @classmethod
    def from_config(cls, cfg: RelayConfig, **driver_kw: Any) -> Gate:
        return cls(cfg, RELAYS[cfg.type](cfg, **driver_kw))

    def add_state_listener(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def start(self, thread: bool = True) -> None:
        """Open the hardware and drive it off; start the timer thread (tests may drive ``service``)."""
        self._driver.open()
        with self._cond:
            self._driver.set(False)
            self._started = True
        if thread:
            self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
            self._thread.start()
        self._notify(False)

    # ------------------------------------------------------------ sink

    def send(self, decision: Decision) -> None:
        if not moves_gate(decision):
            return
        if self._cfg.cameras and decision.camera_id not in self._cfg.cameras:
            return
        if decision.pass_id and decision.pass_id == self._last_pass:  # the pass's update: opened already
            self._counts["skipped_same_pass"] += 1
            return
        self.pulse(decision.camera_id, reason=decision.rule or "open", pass_id=decision.pass_id)

    def pulse(self, camera_id: str = "", reason: str = "command", pass_id: str = "") -> bool:
        """Switch on now; off after pulse_s. False when skipped (cooldown, already on, not started)."""
        with self._cond:
            now = self._clock()
            if not self._started or self._closed:
                raise SinkError("relay: not started")
            if self._failing_since is not None:  # its state is unknown; the owed off comes first
                self._counts["skipped_failing"] += 1
                logger.warning("relay pulse skipped: the relay is not answering camera=%s reason=%s",
                               camera_id, reason)
                return False
            if self._on:
                self._counts["skipped_busy"] += 1
                return False
            if now - self._last_start < self._cfg.cooldown_s:
                self._counts["skipped_cooldown"] += 1
                logger.info("relay pulse skipped: cooldown camera=%s reason=%s", camera_id, reason)
                return False
            try:
                self._driver.set(True)
            except SinkError as err:
                self._failed_locked(now, err, "on")
                self._off_at = now  # state unknown: the timer thread drives it off right away
                self._on, self._on_since = True, now
                self._cond.notify_all()
                raise
            self._on, self._on_since, self._last_start = True, now, now
            self._off_at = now + self._cfg.pulse_s  # max_on_s has one home: _service_locked
            self._last_pass = pass_id or self._last_pass
            self._counts["pulses"] += 1
            self._last = {"at": iso(self._wall()), "camera_id": camera_id, "reason": reason}
            self._cond.notify_all()
        logger.info("relay on camera=%s reason=%s pulse_s=%g", camera_id, reason, self._cfg.pulse_s)
        self._notify(True)
        return True

    # ------------------------------------------------------------ timer

    def service(self) -> float | None:
        """Switch off when due; returns seconds until the next check (None: nothing to do)."""
        with self._cond:
            wait = self._service_locked()
            changed, self._changed = self._changed, False
        if changed:
            self._notify(False)
        return wait

    def _service_locked(self) -> float | None:
        now = self._clock()
        if not self._on:
            return self._probe_locked(now)
        limit = self._on_since + self._cfg.max_on_s  # independent of off_at: a bad deadline cannot outlive it
        due = min(self._off_at, limit)
        if now < due:
            return min(due - now, SAFETY_POLL_S)
        try:
            self._driver.set(False)
        except SinkError as err:
            return self._failed_locked(now, err, "off")
        self._answers_again_locked(now)
        self._on = False
        self._changed = True
        if self._owed_off:
            self._owed_off = False
            logger.info("relay off: the board is back")
            return self._probe_locked(now)
        if now >= limit and self._off_at > limit:
            self._counts["forced_off"] += 1
            logger.warning("relay forced off after max_on_s=%g", self._cfg.max_on_s)
        self._last["duration_s"] = round(now - self._on_since, 3)
        logger.info("relay off after %.3f s", now - self._on_since)
        return self._probe_locked(now)

    def _probe_locked(self, now: float) -> float | None:
        """While off: is the board still there? One gone is owed an off as soon as it is back."""
        if now < self._next_probe:
            return self._next_probe - now
        try:
            if not self._driver.probe():
                return None  # nothing to check (GPIO)
        except SinkError as err:
            self._on, self._on_since, self._off_at, self._owed_off = True, now, now, True
            return self._failed_locked(now, err, "check")
        self._next_probe = now + PROBE_S
        return PROBE_S

    def _failed_locked(self, now: float, err: SinkError, what: str) -> float:
        """Count a failed write or check; log the first of a streak. Returns the delay before the
        next try: capped exponential backoff, without jitter (one board, no crowd to spread)."""
        self._counts["errors"] += 1
        self._last_error = str(err)
        if self._failing_since is None:
            self._failing_since = now
            logger.error("relay %s failed; it is switched off as soon as it answers (retries up to every %g s): %s",
                         what, RETRY_OFF_MAX_S, err)
        self._failures += 1
        return backoff_s(self._failures - 1, RETRY_OFF_S, RETRY_OFF_MAX_S, rng=lambda: 1.0)

    def _answers_again_locked(self, now: float) -> None:
        if self._failing_since is not None:
            logger.warning("relay answers again after %.1f s and %d failed attempts",
                           now - self._failing_since, self._failures)
        self._failing_since, self._failures = None, 0

    def _run(self) -> None:
        while True:
            try:
                with self._cond:
                    if self._closed:
                        return
                    wait = self._service_locked()
                    changed, self._changed = self._changed, False
                    if not changed:
                        self._cond.wait(wait)
                if changed:
                    self._notify(False)
            except Exception:  # one catch-all: keep the guaranteed-off loop alive
                logger.exception("relay timer failed")
                with self._cond:  # close() wakes it
                    if not self._closed:
                        self._cond.wait(RETRY_OFF_S)

    def _notify(self, on: bool) -> None:
        for listener in self._listeners:
            try:
                listener(on)
            except Exception:
                logger.exception("relay state listener failed")

    # ------------------------------------------------------------ status and shutdown

    @property
    def is_on(self) -> bool:
        return self._on

    def failing_s(self) -> float:
        """How long the relay has not answered (0.0 while it does): the watchdog's stall limit applies."""
        since = self._failing_since
        return 0.0 if since is None else max(0.0, self._clock() - since)

    @property
    def alive(self) -> bool:
        """The timer thread that guarantees the off runs (or was not asked for, or we are closed)."""
        return self._thread is None or self._thread.is_alive() or self._closed

    def stats(self) -> dict[str, Any]:
        # "on" until an off is confirmed: a board that stopped answering is not reported off;
        # "unknown" for one that went away while off
        state = "unknown" if self._owed_off else "on" if self._on else "off"
        return {"type": self._cfg.type, "state": state, "ok": self._failing_since is None,
                "failing_s": round(self.failing_s(), 1), **self._counts,
                "last_error": self._last_error or None, "last_pulse": dict(self._last) or None}

    def close(self) -> None:
        """Drive off and release the hardware; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            was_on, self._on = self._on, False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)
        try:
            self._driver.close()  # drives off first
        except (SinkError, OSError) as err:
            logger.error("relay off at close failed: %s", err)
        if was_on:
            self._notify(False)


def relay_test(cfg: RelayConfig, out: TextIO | None = None, **driver_kw: Any) -> int:
    """``plate-agent relay-test``: one pulse, then off. Exit status 0 on success."""
    out = out or sys.stdout
    if cfg.type == "none":
        print("relay: type = \"none\", nothing to test", file=out)
        return 2
    gate = Gate.from_config(cfg, **driver_kw)
    try:
        gate.start()
        gate.pulse(reason="relay-test")
        print(f"relay on ({cfg.type}); off in {cfg.pulse_s:g} s", file=out)
        deadline = time.monotonic() + cfg.pulse_s + 2.0
        while gate.is_on and time.monotonic() < deadline:
            time.sleep(0.02)
        if gate.is_on:
            print("relay: did not switch off in time; forcing off", file=out)
            return 1
        print("relay off: ok", file=out)
        return 0
    except SinkError as err:
        print(f"relay test failed: {err}", file=out)
        return 1
    finally:
        gate.close()
