"""A process restart mid-outage: every crop parked by the first process is read exactly once by the next."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer

ROOT = Path(__file__).resolve().parents[2]


def child(server: PRServer, outbox: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PLATE_RECOGNIZER_TOKEN": PR_TOKEN, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.read.reader_child", "--url", server.url, "--outbox", str(outbox), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def lines_until(proc: subprocess.Popen[str], done: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    out: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(json.loads(line))
        if done(out[-1]):
            return out
    raise AssertionError(f"child did not get there: {out[-5:]} stderr={proc.stderr.read() if proc.stderr else ''}")


def test_restart_mid_outage_reads_every_parked_crop_exactly_once(pr_server: PRServer, tmp_path: Path) -> None:
    outbox = tmp_path / "state" / "reader-outbox.sqlite3"
    pr_server.stop_listening()  # outage: connection refused
    first = child(pr_server, outbox, "--submit", "6")
    try:
        lines_until(first, lambda d: d.get("depth") == 6)
    finally:
        first.kill()  # SIGKILL: no clean shutdown
        first.wait(5)
    assert first.returncode == -9

    pr_server.resume()
    second = child(pr_server, outbox, "--expect", "6")
    try:
        out = lines_until(second, lambda d: "done" in d)
        assert second.wait(10) == 0
    finally:
        second.kill()
    seqs = Counter(d["read"] for d in out if "read" in d)
    assert seqs == Counter(range(6))  # each once
    assert all(d["plate"] == "ABC123" for d in out if "read" in d)
    ok = [r for r in pr_server.lookups() if r.status == 200]
    assert len(ok) == 6
    assert len({hashlib.sha256(r.upload or b"").hexdigest() for r in ok}) == 6  # six different crops
    assert out[-2].get("depth") == 0 or any(d.get("depth") == 0 for d in out)
