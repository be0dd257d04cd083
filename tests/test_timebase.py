"""Boot id and clock synchronisation: the probe sources, the config's trust, the latch."""

from __future__ import annotations

from pathlib import Path

from agent import timebase
from agent.timebase import ClockSync


def test_boot_id_is_the_kernels_and_stable() -> None:
    kernel = Path("/proc/sys/kernel/random/boot_id")
    assert timebase.boot_id() == timebase.boot_id()
    if kernel.exists():
        assert timebase.boot_id() == kernel.read_text().strip()


def test_without_a_kernel_boot_id_each_process_is_its_own_boot(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(timebase, "BOOT_ID_PATH", tmp_path / "missing")
    timebase.boot_id.cache_clear()
    try:
        first = timebase.boot_id()
        timebase.boot_id.cache_clear()
        assert first.startswith("process-") and timebase.boot_id() != first
    finally:
        timebase.boot_id.cache_clear()


def test_kernel_probe_answers_a_bool_here() -> None:
    assert timebase.kernel_synchronised() in (True, False)  # adjtimex(2) read-only works unprivileged


def test_timesyncd_flag_is_a_source(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(timebase, "kernel_synchronised", lambda: False)
    flag = tmp_path / "synchronized"
    assert timebase.system_clock_source(flag) == ""
    flag.touch()
    assert timebase.system_clock_source(flag) == "timesyncd"
    monkeypatch.setattr(timebase, "kernel_synchronised", lambda: True)
    assert timebase.system_clock_source(flag) == "kernel"


def test_sync_latches_and_the_config_can_trust_the_clock() -> None:
    answers = ["", "", "kernel", ""]
    sync = ClockSync(probe=lambda: answers.pop(0))
    assert not sync.synchronised() and sync.stats() == {"synchronised": False, "source": None}
    assert sync.synchronised()  # the third answer
    assert sync.synchronised() and answers == [""]  # latched: the probe is not asked again
    assert sync.stats() == {"synchronised": True, "source": "kernel"}
    trusted = ClockSync(trusted=True, probe=lambda: "")
    assert trusted.stats() == {"synchronised": True, "source": "config"}
