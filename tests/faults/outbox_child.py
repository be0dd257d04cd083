"""A reader worker in its own process whose disk can be made full: ``python -m tests.faults.outbox_child``.

Commands on stdin, one a line: ``submit A B`` (crops A..B-1), ``full`` (no file may grow: every
sqlite write fails as on a full disk), ``free``, ``stats``. Prints JSON lines: {"ok": command},
{"stats": ...} with {"alive": ...}, {"read": frame_seq} per read delivered, {"no_answer": frame_seq}
when a crop was handed back unread. Token from PLATE_RECOGNIZER_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import signal
import sys
import threading
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
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lock = threading.Lock()

    def emit(doc: dict[str, object]) -> None:
        with lock:
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()

    def on_result(crop: PlateCrop, reads: Sequence[PlateRead] | None) -> None:
        emit({"no_answer": crop.frame_seq} if reads is None else {"read": crop.frame_seq})

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    cfg = reader_cfg(args.url, retries=0, backoff_initial_s=0.05, backoff_max_s=0.2)
    reader = CloudReader(cfg)
    outbox = Outbox(args.outbox).open()
    worker = ReadWorker(reader, outbox, cfg, on_result, max_decision_age_s=60.0)
    worker.start()
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "submit":
            for i in range(int(cmd[1]), int(cmd[2])):
                worker.submit(make_crop(i))
        elif cmd[0] == "full":
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
        elif cmd[0] == "free":
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        elif cmd[0] == "stats":
            alive = any(t.name == "reader" and t.is_alive() for t in threading.enumerate())
            emit({"stats": {**worker.stats(), "alive": alive}})
            continue
        emit({"ok": cmd[0]})
    worker.close()
    outbox.close()
    reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
