"""Hostile peers on loopback: a reader or webhook receiver answering one byte every half second
is cut off at the request's whole deadline; an endless answer is read only up to its cap; a flood
of slow /status clients holds a few threads, each client for a few seconds at most."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

import pytest

from agent.config import WebhookConfig
from agent.read import SdkReader
from agent.read.errors import BadResponse, Timeout
from agent.sinks.webhook import WebhookSink
from agent.status import StatusBoard
from tests.faults.conftest import http_get, wait_until
from tests.read.conftest import make_crop, reader_cfg
from tests.sinks.test_mqtt import decision
from tests.slowloris import SlowLoris

pytestmark = pytest.mark.faults


def _timed(fn) -> tuple[float, BaseException | None]:
    """``fn()`` on a thread: (seconds it took, what it raised); inf if still running after 8 s."""
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            result.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the test
            result.append(err)

    t0 = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(8.0)
    return (time.monotonic() - t0 if result else float("inf")), (result[0] if result else None)


@pytest.mark.parametrize("trickle", ["head", "body"])
def test_slow_loris_reader_is_cut_off_at_its_whole_deadline(trickle: str) -> None:
    with SlowLoris(trickle=trickle, every_s=0.5) as server:
        reader = SdkReader(reader_cfg(server.url.replace("/hook", "/v1/plate-reader/"),
                                      timeout_connect_s=1.0, timeout_read_s=2.0))
        took, err = _timed(lambda: reader.read(make_crop()))
        reader.close()
        assert server.requests == 1
    assert took < 4.5, f"a 3 s budget held the read for {took:.1f} s"
    assert isinstance(err, Timeout), err


def test_endless_reader_answer_is_read_only_up_to_the_cap() -> None:
    with SlowLoris(trickle="flood", flood_bytes=200_000_000) as server:
        reader = SdkReader(reader_cfg(server.url.replace("/hook", "/v1/plate-reader/")))
        took, err = _timed(lambda: reader.read(make_crop()))
        reader.close()
        sent = server.bytes_sent
    assert isinstance(err, BadResponse), err
    assert sent < 20_000_000, f"{sent} bytes taken for a 1 MB cap"


def test_slow_loris_webhook_attempt_ends_at_timeout_s() -> None:
    with SlowLoris(trickle="head", every_s=0.5) as server:
        w = WebhookSink(WebhookConfig(url=server.url, timeout_s=1.0, retries=0))
        w.start()
        t0 = time.monotonic()
        w.send(decision())
        wait_until(lambda: w.stats()["failed"] == 1, timeout_s=6.0, what="the attempt given up")
        took = time.monotonic() - t0
        w.close()
    assert took < 3.0, f"a 1 s webhook attempt took {took:.1f} s"
    assert "DeadlineExceeded" in w.stats()["last_error"]


def test_webhook_answer_body_is_capped() -> None:
    with SlowLoris(trickle="flood", flood_bytes=200_000_000) as server:
        w = WebhookSink(WebhookConfig(url=server.url, timeout_s=5.0, retries=0))
        w.start()
        w.send(decision())
        wait_until(lambda: w.stats()["sent"] + w.stats()["failed"] == 1, timeout_s=6.0, what="the attempt")
        w.close()
        sent = server.bytes_sent
    assert w.stats()["sent"] == 1  # a 200 is delivered, whatever its body
    assert sent < 20_000_000, f"{sent} bytes of an answer nobody reads"


# ---------------------------------------------------------------- /status


@pytest.fixture
def status_server(server_for):
    """``status_server(**[status] keys)`` -> a started StatusServer over an empty board."""
    return lambda **cfg: server_for(StatusBoard(lambda: {}, frame_timeout_s={}), **cfg)


def test_status_flood_of_slow_clients_holds_few_threads_and_each_is_cut_off(status_server) -> None:
    server = status_server()
    baseline = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
    t0 = time.monotonic()
    open_ = set(range(len(socks)))
    peak = 0
    request = b"GET /status HTTP/1.0\r\n" + b"X-Slow: " + b"a" * 100
    sent = 0
    while open_ and time.monotonic() - t0 < 9.0:
        for i in list(open_):  # one more byte from every slow client, every half second
            try:
                socks[i].send(request[sent:sent + 1])
            except OSError:
                open_.discard(i)
        sent += 1
        peak = max(peak, threading.active_count() - baseline)
        ready, _, _ = select.select([socks[i] for i in open_], [], [], 0.5)
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data or b"503" in data:
                open_.discard(socks.index(s))
        if 2.0 < time.monotonic() - t0 < 2.6:  # mid-flood, another client is answered at once
            t1 = time.monotonic()
            code, _ = http_get(server.port, timeout_s=3.0)
            assert code == 503 and time.monotonic() - t1 < 1.0
    took = time.monotonic() - t0
    for s in socks:
        s.close()
    assert peak <= 12, f"{peak} threads for 300 slow clients"
    assert not open_, f"{len(open_)} slow clients still held after {took:.1f} s"
    wait_until(lambda: http_get(server.port)[0] == 200, timeout_s=6.0, what="/status served after the flood")


def test_status_bound_beyond_loopback_is_warned_about(status_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="agent.status")
    status_server(bind="127.0.0.1")
    assert not [r for r in caplog.records if "network" in r.getMessage()]
    status_server(bind="0.0.0.0")
    assert [r for r in caplog.records if "reachable from the network" in r.getMessage()]
