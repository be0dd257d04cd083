"""Reader "done when" check against the contract server (loopback, real time).

    python -m tests.bench.reader_load --scenario load     # 50 crops in 10 s at 1 lookup/s
    python -m tests.bench.reader_load --scenario outage --outage-s 120 [--outage-kind refuse|502|slow]

load: the server throttles at --rate lookups/s like the cloud; every crop must be read exactly once
and no crop may reach the outbox because of a 429. outage: the server is down for --outage-s while
crops keep coming; after it returns every crop must be read exactly once. Exit 0 when it holds.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.config import ReaderConfig
from agent.read import CloudReader
from agent.read.outbox import Outbox
from agent.read.worker import ReadWorker
from agent.types import PlateCrop, PlateRead
from tests.prserver import PRServer
from tests.read.conftest import make_crop

TOKEN = "bench-token-0123456789"


class Run:
    def __init__(self, server: PRServer, state: Path, rate: float, **cfg: Any) -> None:
        self.cfg = ReaderConfig(type="cloud", url=server.url, rate_per_s=rate, usage_poll_s=0.0, **cfg)
        self.reader = CloudReader(self.cfg, token=TOKEN)
        self.outbox = Outbox(state / "reader-outbox.sqlite3")
        self.reads: collections.Counter[int] = collections.Counter()
        self.first_read_at: float | None = None
        self.last_read_at = 0.0
        self.late = 0
        self.stop = threading.Event()
        self.worker = ReadWorker(self.reader, self.outbox, self.cfg, self._on_answer, self.stop,
                                 max_decision_age_s=5.0)

    def _on_answer(self, crop: PlateCrop, reads: Sequence[PlateRead]) -> None:
        for read in reads:
            self._on_read(read)

    def _on_read(self, read: PlateRead) -> None:
        assert read.crop is not None
        self.reads[read.crop.frame_seq] += 1
        now = time.monotonic()
        self.first_read_at = self.first_read_at or now
        self.last_read_at = now
        self.late += read.late

    def wait_all(self, n: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.reads) < n:
            time.sleep(0.05)
        time.sleep(1.0)  # duplicates would arrive here
        return len(self.reads) >= n

    def close(self) -> None:
        self.stop.set()
        self.worker.close()
        self.outbox.close()
        self.reader.close()


def offer(run: Run, first_seq: int, n: int, seconds: float) -> int:
    accepted = 0
    t0 = time.monotonic()
    for i in range(n):
        target = t0 + i * seconds / n
        time.sleep(max(0.0, target - time.monotonic()))
        accepted += run.worker.submit(make_crop(first_seq + i))
    return accepted


def verdict(run: Run, server: PRServer, n: int, extra: dict[str, Any]) -> dict[str, Any]:
    s = run.worker.stats()
    statuses = collections.Counter(server.statuses())
    report = {
        **extra,
        "offered": n,
        "read_crops": len(run.reads),
        "duplicates": sum(c - 1 for c in run.reads.values() if c > 1),
        "missing": sorted(set(range(n)) - set(run.reads))[:20],
        "late_reads": run.late,
        "server_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "parked": s["parked"],
        "dropped": s["dropped"],
        "outbox_evicted": s["outbox"]["evicted"],
        "outbox_depth_end": s["outbox"]["depth"],
        "errors": s["errors"],
        "throttled": s["throttled"],
    }
    report["ok"] = (
        report["read_crops"] == n
        and report["duplicates"] == 0
        and not s["dropped"]
        and not s["outbox"]["evicted"]
        and s["parked"].get("throttled", 0) == 0
        and s["outbox"]["depth"] == 0
    )
    return report


def scenario_load(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    server = PRServer(token=TOKEN, rate_per_s=args.rate).start()
    run = Run(server, state, args.rate)
    run.worker.start()
    try:
        t0 = time.monotonic()
        accepted = offer(run, 0, args.crops, args.offer_s)
        offered_s = time.monotonic() - t0
        run.wait_all(args.crops, timeout=args.crops / max(args.rate, 0.1) * 1.5 + 30)
        return verdict(run, server, args.crops, {
            "scenario": "load",
            "rate_per_s": args.rate,
            "accepted": accepted,
            "offer_s": round(offered_s, 2),
            "all_read_after_s": round(run.last_read_at - t0, 2),
            "lookups_per_s": round(len(run.reads) / max(0.001, run.last_read_at - (run.first_read_at or t0)), 3),
        })
    finally:
        run.close()
        server.close()


def scenario_outage(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    server = PRServer(token=TOKEN, rate_per_s=args.rate).start()
    run = Run(server, state, args.rate)
    run.worker.start()
    try:
        server.slow_s = run.cfg.timeout_read_s + 10.0  # "slow" means past the client's timeout
        n_before = 5
        offer(run, 0, n_before, 5.0)  # normal traffic
        if args.outage_kind == "refuse":
            server.stop_listening()
        else:
            server.outage = args.outage_kind
        t_down = time.monotonic()
        n_during = max(1, int(args.outage_s * args.outage_crops_per_s))
        offer(run, n_before, n_during, args.outage_s)
        time.sleep(max(0.0, t_down + args.outage_s - time.monotonic()))
        if args.outage_kind == "refuse":
            server.resume()
        else:
            server.outage = None
        t_up = time.monotonic()
        depth_at_recovery = run.worker.stats()["outbox"]["depth"]
        n = n_before + n_during
        first_after = [0.0]
        seen_before = len(run.reads)

        def watch() -> None:
            while len(run.reads) == seen_before and time.monotonic() - t_up < 600:
                time.sleep(0.05)
            first_after[0] = time.monotonic() - t_up

        threading.Thread(target=watch, daemon=True).start()
        run.wait_all(n, timeout=n / max(args.rate, 0.1) * 1.5 + args.backoff_max_s + 60)
        return verdict(run, server, n, {
            "scenario": "outage",
            "outage_kind": args.outage_kind,
            "outage_s": args.outage_s,
            "crops_during_outage": n_during,
            "outbox_depth_at_recovery": depth_at_recovery,
            "first_read_after_recovery_s": round(first_after[0], 2),
            "all_read_after_recovery_s": round(run.last_read_at - t_up, 2),
        })
    finally:
        run.close()
        server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=("load", "outage", "both"), default="both")
    ap.add_argument("--rate", type=float, default=1.0, help="lookups/s: server throttle and client limit")
    ap.add_argument("--crops", type=int, default=50)
    ap.add_argument("--offer-s", type=float, default=10.0)
    ap.add_argument("--outage-s", type=float, default=120.0)
    ap.add_argument("--outage-kind", choices=("refuse", "502", "slow", "drop"), default="refuse")
    ap.add_argument("--outage-crops-per-s", type=float, default=0.5)
    ap.add_argument("--backoff-max-s", type=float, default=30.0, help="the reader default")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ok = True
    for name in ("load", "outage") if args.scenario == "both" else (args.scenario,):
        with tempfile.TemporaryDirectory() as tmp:
            report = (scenario_load if name == "load" else scenario_outage)(args, Path(tmp))
        print(json.dumps(report), flush=True)
        ok = ok and report["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
