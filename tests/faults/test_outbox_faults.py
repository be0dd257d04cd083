"""The reader's outbox under faults, with the reader worker in a real child process and the contract
server: a SIGKILL while a parked crop's read is being delivered, and a full disk while parking and
while deleting. The promise: every parked crop is delivered at least once (twice only across a
crash between delivery and delete); a crop that cannot be parked is counted, logged and handed back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer
from tests.read.test_restart import child, lines_until

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]


def reads_of(lines: list[dict[str, Any]]) -> Counter[int]:
    return Counter(d["read"] for d in lines if "read" in d)


def test_kill_while_a_parked_read_is_delivered_delivers_it_after_the_restart(
        pr_server: PRServer, tmp_path: Path) -> None:
    outbox = tmp_path / "state" / "reader-outbox.sqlite3"
    pr_server.stop_listening()
    first = child(pr_server, outbox, "--submit", "3", "--die-in-delivery", "1")
    try:
        lines_until(first, lambda d: d.get("depth") == 3)  # all three parked
        pr_server.resume()
        out1 = lines_until(first, lambda d: "delivering" in d)
        assert first.wait(5) == -9  # killed mid-delivery of crop 1
    finally:
        if first.poll() is None:
            first.kill()
    second = child(pr_server, outbox, "--expect", "2")
    deadline = threading.Timer(20.0, second.kill)  # a lost crop would leave it waiting for ever
    deadline.start()
    try:
        out2 = lines_until(second, lambda d: "done" in d)
        assert second.wait(10) == 0
    finally:
        deadline.cancel()
        if second.poll() is None:
            second.kill()
    assert reads_of(out1) == Counter([0])
    assert reads_of(out2) == Counter([1, 2])  # crop 1 again, not lost; crop 0 not again
    assert [r.status for r in pr_server.lookups()].count(200) == 4  # 0, 1 (cut short), 1, 2
    assert any(d.get("depth") == 0 for d in out2)


class Child:
    """tests/faults/outbox_child.py: a worker whose disk the test can fill and free."""

    def __init__(self, server: PRServer, outbox: Path) -> None:
        env = {**os.environ, "PLATE_RECOGNIZER_TOKEN": PR_TOKEN, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.outbox_child", "--url", server.url, "--outbox", str(outbox)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self.log: list[str] = []  # its stderr (a pipe: a file could not grow while the "disk" is full)
        self._reader = threading.Thread(target=self._read_log, name="child-stderr", daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def text(self) -> str:
        return "".join(self.log)

    def logged(self, words: str, times: int) -> bool:
        """Whether ``words`` were logged ``times`` times (stderr comes through a thread: wait for it)."""
        deadline = time.monotonic() + 10.0
        while self.text().count(words) < times and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.text().count(words) == times

    def ask(self, command: str) -> dict[str, Any]:
        """Send a command; its answer (everything printed before it is kept in ``lines``)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        while line := self.proc.stdout.readline():
            doc = json.loads(line)
            self.lines.append(doc)
            if "ok" in doc or "stats" in doc:
                return doc
        raise AssertionError(f"child ended: {self.text()[-2000:]}")

    def stats_when(self, check: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            s = self.ask("stats")["stats"]
            if check(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last stats={s}")
            time.sleep(0.05)

    def close(self) -> int:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(5)


def test_full_disk_while_parking_and_deleting_is_counted_and_loses_nothing_else(
        pr_server: PRServer, tmp_path: Path) -> None:
    proc = Child(pr_server, tmp_path / "state" / "reader-outbox.sqlite3")
    try:
        pr_server.stop_listening()  # outage: every crop goes to the outbox
        proc.ask("submit 0 2")
        proc.stats_when(lambda s: s["outbox"]["depth"] == 2)
        proc.ask("full")
        proc.ask("submit 2 4")  # these two cannot be parked
        s = proc.stats_when(lambda s: s["dropped"].get("outbox_error") == 2)
        assert s["alive"] and s["outbox"]["depth"] == 2 and s["parked"] == {"unavailable": 2}
        assert proc.logged("could not park a crop", 2)
        proc.ask("free")
        proc.ask("submit 4 5")
        proc.stats_when(lambda s: s["outbox"]["depth"] == 3)  # 0, 1 and 4

        proc.ask("full")  # the service answers again, but nothing can be deleted
        pr_server.resume()
        s = proc.stats_when(lambda s: s["errors"].get("outbox", 0) >= 1)
        assert s["alive"] and reads_of(proc.lines) == Counter([0])  # delivered once, kept in the outbox
        proc.ask("free")
        s = proc.stats_when(lambda s: s["outbox"]["depth"] == 0 and s["crops_read"] == 3)
        assert reads_of(proc.lines) == Counter([0, 1, 4])  # each parked crop once: no re-read of 0
        assert {d["no_answer"] for d in proc.lines if "no_answer" in d} == {0, 1, 2, 3, 4}  # handed back
        assert s["dropped"] == {"outbox_error": 2}  # the only loss, counted
        assert [r.status for r in pr_server.lookups()].count(200) == 3
        assert proc.logged("could not delete a delivered crop", 1)  # once, then retried quietly
    finally:
        assert proc.close() == 0
    assert "Traceback" not in proc.text(), proc.text()
    assert proc.text().count("could not park a crop") == 2
    assert proc.text().count("could not delete a delivered crop") == 1
