"""A real mosquitto broker on 127.0.0.1 for the MQTT tests (loaded as a plugin by tests/conftest.py)."""

from __future__ import annotations

import getpass
import queue
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """``mosquitto -c <file>`` with persistence, so a restart keeps sessions and retained messages."""

    def __init__(self, workdir: Path, extra_conf: str = "") -> None:
        self.dir = workdir
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'false' if 'password_file' in extra_conf else 'true'}\n"
            f"persistence true\npersistence_location {workdir}/\n"
            f"user {getpass.getuser()}\n{extra_conf}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Subscriber:
    """A paho test client collecting messages into a queue (persistent session when ``client_id`` is set)."""

    def __init__(self, port: int, topics: str | list[str], client_id: str = "", *, ca_file: str = "",
                 username: str = "", password: str = "") -> None:
        import paho.mqtt.client as mqtt

        self.messages: queue.Queue[Any] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not client_id)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        if username:
            self.client.username_pw_set(username, password)
        self._subscribed = queue.Queue[int]()
        self.topics = [topics] if isinstance(topics, str) else topics
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in self.topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.put(mid)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self._subscribed.get(timeout=5)

    def get(self, timeout: float = 5.0) -> Any:
        return self.messages.get(timeout=timeout)

    def drain(self, until: float) -> list[Any]:
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=max(0.0, until - time.monotonic())))
            except queue.Empty:
                return out

    def collect(self, done: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
        """Messages from now on until ``done(all of them so far)``; fails after ``timeout``."""
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while not done(out):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out collecting MQTT messages; got {[(m.topic, m.payload) for m in out]}")
            try:
                out.append(self.messages.get(timeout=min(left, 0.1)))
            except queue.Empty:
                pass
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def require_tools(*names: str) -> None:
    """Skip the test when a program the MQTT tests run (mosquitto, openssl) is missing; fail instead
    when PLATE_AGENT_REQUIRE_MOSQUITTO=1 (CI installs them, so a missing one must not hide)."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    why = f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})"
    if os.environ.get("PLATE_AGENT_REQUIRE_MOSQUITTO") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    require_tools("mosquitto")
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()
