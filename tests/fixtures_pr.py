"""pytest fixtures for the Plate Recognizer contract server (tests/prserver.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.prserver import PRServer

PR_TOKEN = "pr-test-token-5f3a9c"  # distinctive, so log captures can be searched for it


@pytest.fixture
def pr_server() -> Iterator[PRServer]:
    """The cloud flavour on 127.0.0.1: token ``PR_TOKEN``, no throttling, answers ``ABC123``."""
    server = PRServer(token=PR_TOKEN).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pr_sdk_server() -> Iterator[PRServer]:
    """The on-premise SDK flavour: no token, usage in every answer, ``GET /info/``."""
    server = PRServer(token=None).start()
    try:
        yield server
    finally:
        server.close()
