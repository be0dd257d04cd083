"""Shared test set-up. Fixture modules (tests/fixtures_*.py: RTSP server, MQTT broker, Plate
Recognizer contract server, ...) are loaded as plugins so every test can use them."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(f"tests.{p.stem}" for p in Path(__file__).parent.glob("fixtures_*.py"))
