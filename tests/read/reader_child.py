"""A reader worker in its own process, for the restart tests: ``python -m tests.read.reader_child``.

Prints one JSON line per event on stdout: {"depth": n} whenever the outbox depth changes, and
{"read": frame_seq, "plate": ..., "late": ...} per read. Token from PLATE_RECOGNIZER_TOKEN.
``--die-in-delivery SEQ``: the process SIGKILLs itself while the read of crop SEQ is being delivered.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from agent.read import CloudReader
from agent.read.outbox import Outbox
from agent.read.worker import ReadWorker
from agent.types import PlateCrop, PlateRead
from tests.read.conftest import make_crop, reader_cfg


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--outbox", required=True)
    ap.add_argument("--submit", type=int, default=0, help="crops to offer, seq 0..N-1")
    ap.add_argument("--expect", type=int, default=0, help="exit 0 after this many reads (0 = run until killed)")
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--die-in-delivery", type=int, default=-1, help="SIGKILL while delivering this crop's read")
    args = ap.parse_args()

    out_lock = threading.Lock()

    def emit(doc: dict[str, object]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()

    reads: list[int] = []

    def on_answer(crop: PlateCrop, answer: Sequence[PlateRead]) -> None:
        for read in answer:
            seq = read.crop.frame_seq if read.crop else -1
            if seq == args.die_in_delivery:
                emit({"delivering": seq})
                os.kill(os.getpid(), signal.SIGKILL)
            reads.append(seq)
            emit({"read": seq, "plate": read.plate, "late": read.late})

    cfg = reader_cfg(args.url, rate_per_s=args.rate, retries=1, backoff_initial_s=0.05, backoff_max_s=0.2)
    reader = CloudReader(cfg)
    outbox = Outbox(args.outbox)
    stop = threading.Event()
    worker = ReadWorker(reader, outbox, cfg, on_answer, stop, max_decision_age_s=5.0)
    worker.start()
    for i in range(args.submit):
        worker.submit(make_crop(i))
        time.sleep(0.02)
    last = -1
    while True:
        depth = worker.stats()["outbox"]["depth"]
        if depth != last:
            emit({"depth": depth})
            last = depth
        # nothing queued, nothing parked, every counted read delivered: a duplicate would be in ``reads`` now
        if args.expect and len(reads) >= args.expect and worker.idle() and depth == 0 \
                and worker.stats()["reads"] == len(reads):
            break
        time.sleep(0.02)
    stop.set()
    worker.close()
    outbox.close()
    reader.close()
    emit({"done": len(reads)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
