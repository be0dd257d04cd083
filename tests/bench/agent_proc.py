"""The agent as ``plate-agent run -c FILE --print-events`` runs it (the same Service, sinks and
signals), plus one ``STATS {json}`` line on stdout after it stopped, for the benchmarks' counters.

    .venv/bin/python -m tests.bench.agent_proc CONFIG
"""

from __future__ import annotations

import json
import signal
import sys

from agent import config
from agent.__main__ import setup_logging
from agent.events import JsonLinesSink
from agent.service import Service


def main(argv: list[str]) -> int:
    cfg = config.load(argv[0])
    setup_logging(cfg.log_level)
    service = Service(cfg, extra_sinks=[JsonLinesSink()])
    signal.signal(signal.SIGTERM, lambda *_: service.request_stop())
    signal.signal(signal.SIGINT, lambda *_: service.request_stop())
    try:
        service.start()
        code = service.run()
    finally:
        service.close()
    print("STATS " + json.dumps(service.report.stats(), default=str), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
