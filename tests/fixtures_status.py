"""A /status server on a free loopback port, closed after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.config import StatusConfig
from agent.status import StatusBoard, StatusServer


@pytest.fixture
def server_for() -> Iterator[Callable[..., StatusServer]]:
    """``server_for(board, **[status] keys)`` -> a started StatusServer."""
    servers: list[StatusServer] = []

    def make(b: StatusBoard, **cfg: Any) -> StatusServer:
        s = StatusServer(StatusConfig(port=0, **cfg), b)
        s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
