"""The TFLite runtime the detector tests need (loaded as a plugin by tests/conftest.py).

Tests that run a model use the ``runtime`` fixture (or ``require_tflite()``): the Interpreter class
the agent itself would pick (LiteRT, else tflite-runtime). Without one they are skipped, or fail
when PLATE_AGENT_REQUIRE_TFLITE=1 (set in CI so a broken install cannot hide every detector test).
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def require_tflite() -> Any:
    """The Interpreter class of the runtime the detector uses; skip (or fail in CI) without one."""
    from agent.detect.tflite import load_interpreter_class
    from agent.errors import DetectorError

    try:
        return load_interpreter_class()
    except DetectorError as err:
        if os.environ.get("PLATE_AGENT_REQUIRE_TFLITE") == "1":
            pytest.fail(str(err))
        pytest.skip(str(err))


@pytest.fixture
def runtime() -> Any:
    """The TFLite Interpreter class the detector would build its model with."""
    return require_tflite()
