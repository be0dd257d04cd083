"""Stage 7: outputs. Every sink gets every Decision, relay first; the wiring builds them.

``Sink.send`` must return quickly: slow work (network) happens on the sink's own thread.
"""

from __future__ import annotations

from typing import Protocol

from ..types import Decision


class Sink(Protocol):
    def send(self, decision: Decision) -> None: ...
    def close(self) -> None: ...


def crop_jpeg(decision: Decision) -> bytes | None:
    """The crop of the decision's best read, when the pipeline kept one."""
    crop = decision.read.crop
    return crop.jpeg if crop is not None and crop.jpeg else None


__all__ = ["Sink", "crop_jpeg"]
