"""Fault injection: the whole agent (``Service``, real pipeline and status server) running
on a thread, drawn clips shared by every test, and small polling functions."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from agent import config
from agent.notify import Notifier
from agent.tools.scene import SceneSpec, write_clip
from agent.service import Service

T = TypeVar("T")


def quick_scene(plates: tuple[str, ...], lead_in_s: float = 0.5) -> SceneSpec:
    """Cars about 3 s apart; the whole clip lasts a few seconds."""
    return SceneSpec(plates=plates, lead_in_s=lead_in_s, drive_in_s=1.0, stop_s=0.8, drive_out_s=0.5,
                     gap_s=0.8, clock_overlay=True, noise_sigma=2.0)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``clips(plates, lead_in_s=0.5)`` -> a drawn clip, rendered once per session."""
    made: dict[tuple[Any, ...], Path] = {}
    folder = tmp_path_factory.mktemp("clips")

    def get(plates: tuple[str, ...], lead_in_s: float = 0.5) -> Path:
        key = (plates, lead_in_s)
        if key not in made:
            path = folder / f"clip{len(made)}.mp4"
            write_clip(quick_scene(plates, lead_in_s), path)
            made[key] = path
        return made[key]

    return get


def wait_until(check: Callable[[], T], timeout_s: float = 20.0, every_s: float = 0.1, what: str = "",
               detail: Callable[[], Any] | None = None) -> T:
    """The first truthy ``check()``; fails the test after ``timeout_s`` (saying ``detail()`` when given)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    more = f"; {detail()!r}" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}; last={last!r}{more}")


def http_get(port: int, path: str = "/status", timeout_s: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Pings:
    """Reads the notify socket all the time (as systemd does: a full socket would block the sender)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.times: list[float] = []
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="notify-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            self.times += [time.monotonic()] * msg.splitlines().count("WATCHDOG=1")

    def count(self, seconds: float, settle_s: float = 0.4) -> int:
        """WATCHDOG=1 messages sent during the next ``seconds`` (after ``settle_s``: one may be on its way)."""
        time.sleep(settle_s)
        start = time.monotonic()
        time.sleep(seconds)
        return sum(1 for t in self.times if t >= start)

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


STALL_S = 1.5  # the watchdog's stall limit in the fault runs


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[Pings, Notifier]]:
    """A real notify socket and the Notifier that sends to it."""
    pings = Pings(tmp_path / "n.sock")
    yield pings, Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "600000"})
    pings.close()


class StillCamera:
    """The same grey frame at 10 fps; each read hangs for 3 s while ``hang`` is set."""

    frame_interval_s = 1 / 10

    def __init__(self, hang: threading.Event | None = None) -> None:
        self.hang = hang
        self.image = np.full((240, 320, 3), 80, np.uint8)

    def open(self) -> None:
        pass

    def read(self) -> object:
        if self.hang is not None and self.hang.is_set():
            time.sleep(3.0)  # a driver call that hangs for a while
        return self.image

    def close(self) -> None:
        pass


class Running:
    """A started Service with ``run()`` on its own thread, and its status server on a free port."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.thread = threading.Thread(target=service.run, name="test-supervisor", daemon=True)

    @property
    def port(self) -> int:
        assert self.service.status.server is not None
        return self.service.status.server.port

    def status(self) -> tuple[int, dict[str, Any]]:
        code, body = http_get(self.port)
        return code, json.loads(body)

    def doc(self) -> dict[str, Any]:
        return self.status()[1]

    def metrics(self) -> str:
        code, body = http_get(self.port, "/metrics")
        assert code == 200
        return body.decode()

    def close(self) -> None:
        self.service.close()
        self.thread.join(5)


def agent_config(tmp_path: Path, **sections: Any) -> config.Config:
    doc: dict[str, Any] = {"storage": {"state_dir": str(tmp_path / "state")},
                           "status": {"port": 0, "mqtt_interval_s": 0.5}}
    for key, value in sections.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and key in doc else value
    return config.parse(doc)


@pytest.fixture
def start_agent() -> Iterator[Callable[..., Running]]:
    """``start_agent(cfg, **Service kwargs)`` -> a Running agent, closed after the test."""
    running: list[Running] = []

    def start(cfg: config.Config, **kwargs: Any) -> Running:
        service = Service(cfg, **kwargs)
        service.start()
        r = Running(service)
        running.append(r)
        r.thread.start()
        return r

    yield start
    for r in running:
        r.close()
