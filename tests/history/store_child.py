"""An event store in its own process, to be killed: ``python -m tests.history.store_child DB``.

Writes events one transaction at a time, as the store's thread does, and prints each event id on
stdout once its transaction committed; runs until killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.config import HistoryConfig
from agent.history import EventStore
from tests.history.events import decision


def main() -> int:
    store = EventStore(HistoryConfig(quota_mb=50.0), Path(sys.argv[1])).open()
    n = 0
    while True:
        d = decision(f"AB{n % 1000:03d}CD", jpeg=b"\xff\xd8" + bytes(2000) + b"\xff\xd9")
        store.write([d])
        sys.stdout.write(d.event_id + "\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    sys.exit(main())
