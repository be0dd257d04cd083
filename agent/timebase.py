"""Which times can be trusted: the boot a monotonic time belongs to, and whether the wall clock is
synchronised, so that dated rules, schedules and ages across a reboot may use it.

CLOCK_MONOTONIC restarts at every boot: a monotonic time kept on disk means something only with the
boot id it was taken in. A board without an RTC starts its wall clock from a saved time and NTP steps
it later: the wall clock counts only once the kernel or systemd-timesyncd says it is synchronised,
or the config says the board's clock is trusted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")  # created by timesyncd at its first sync
NTP_PHASE_LIMIT_US = 16_000_000  # the kernel's cap on maxerror; at the cap it sets STA_UNSYNC
STA_UNSYNC = 0x0040


@functools.cache
def boot_id() -> str:
    """This boot's id; without one (not Linux), an id of this process, so nothing stored by an
    earlier process counts as taken in this boot."""
    try:
        value = BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        value = ""
    return value or f"process-{uuid.uuid4()}"


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of adjtimex(2), the legacy layout of the plain ``adjtimex`` symbol."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 32),  # the kernel's padding, and room to spare
    ]


@functools.cache
def _adjtimex() -> Callable[[ctypes._Pointer[_Timex]], int] | None:
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.POINTER(_Timex)]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def kernel_synchronised() -> bool | None:
    """The kernel's view, read-only through adjtimex(2) (modes = 0): synchronised when its maximum
    error is under the 16 s limit, as systemd's ``timedatectl`` decides (chronyd may leave STA_UNSYNC
    set only to keep the kernel off the RTC), or when STA_UNSYNC is clear. None: cannot ask."""
    fn = _adjtimex()
    if fn is None:
        return None
    tx = _Timex()
    if fn(ctypes.pointer(tx)) < 0:
        return None
    return tx.maxerror < NTP_PHASE_LIMIT_US or not tx.status & STA_UNSYNC


def system_clock_source(timesyncd_flag: Path = TIMESYNCD_FLAG) -> str:
    """Which source says the wall clock is synchronised now: "kernel", "timesyncd", or "" for none."""
    if kernel_synchronised():
        return "kernel"
    if timesyncd_flag.exists():  # /run is emptied at boot: the flag is this boot's
        return "timesyncd"
    return ""


def system_synchronised() -> bool:
    """Whether a system source says the wall clock is synchronised now (no config, no latch)."""
    return bool(system_clock_source())


class ClockSync:
    """Whether the wall clock may be used for dated and scheduled rules and for ages across a reboot.

    Trusted by the config (a board with an RTC), or synchronised once ``probe`` names a source. Once
    synchronised it stays so for the life of the process: a synchronised clock drifts seconds a day,
    and an NTP outage must not switch scheduled rules off. Thread-safe (the latch is one assignment).
    """

    def __init__(self, trusted: bool = False, probe: Callable[[], str] = system_clock_source) -> None:
        self._probe = probe
        self._source = "config" if trusted else ""

    def synchronised(self) -> bool:
        if not self._source:
            source = self._probe()
            if source:
                logger.info("wall clock synchronised source=%s: dated and scheduled rules count", source)
                self._source = source
        return bool(self._source)

    def stats(self) -> dict[str, object]:
        synced = self.synchronised()
        return {"synchronised": synced, "source": self._source or None}


@dataclass(frozen=True)
class Timebase:
    """Where the agent learns its boot id and whether its clock is synchronised; tests replace both."""

    boot_id: Callable[[], str] = boot_id
    clock_source: Callable[[], str] = system_clock_source  # the probe behind ClockSync


__all__ = ["ClockSync", "Timebase", "boot_id", "kernel_synchronised", "system_clock_source",
           "system_synchronised"]
