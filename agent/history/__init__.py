"""Event history: the store that writes every event and paid read (``store``) and the queries the
JSON API answers from (``query``)."""

from __future__ import annotations

from .store import FILENAME, EventStore

__all__ = ["FILENAME", "EventStore"]
