"""Hostile peers on loopback: a reader or webhook receiver answering one byte every half second
is cut off at the request's whole deadline; an endless answer is read only up to its cap."""

from __future__ import annotations

import threading
import time

import pytest

from agent.config import WebhookConfig
from agent.read import SdkReader
from agent.read.errors import BadResponse, Timeout
from agent.sinks.webhook import WebhookSink
from tests.faults.conftest import wait_until
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
