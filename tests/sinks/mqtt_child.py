"""Child process for the MQTT tests: an MqttSink that sends N events, says so, then waits to be killed.

python -m tests.sinks.mqtt_child <port> <state_dir> <n_events>
"""

from __future__ import annotations

import sys
import time

from agent.config import MqttConfig, StorageConfig
from agent.sinks.mqtt import MqttSink
from tests.sinks.test_mqtt import decision


def main() -> None:
    port, state_dir, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sink = MqttSink(MqttConfig(enabled=True, port=port, prefix="pa", client_id="agent-child", keepalive_s=5,
                               reconnect_min_s=1, reconnect_max_s=1), StorageConfig(), state_dir, cameras=["gate"])
    sink.start()
    deadline = time.monotonic() + 5
    while n == 0 and not sink.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(n):
        sink.send(decision(f"child-{i}"))
    print("ready", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    main()
