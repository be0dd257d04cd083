"""Stage 7: outputs. Every sink gets every Decision; the relay is built (and served) first.

``Sink.send`` must return quickly: slow work (network) happens on the sink's own thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol
from collections.abc import Callable

from ..config import Config
from ..types import Decision

logger = logging.getLogger(__name__)


class Sink(Protocol):
    def send(self, decision: Decision) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


def crop_jpeg(decision: Decision) -> bytes | None:
    """The crop of the decision's best read, when the pipeline kept one."""
    crop = decision.read.crop
    return crop.jpeg if crop is not None and crop.jpeg else None


def build_sinks(cfg: Config, state_dir: Path, open_gate: Callable[[str], None] | None = None,
                **relay_kw: Any) -> list[Sink]:
    """Build and start the configured sinks, relay first. On failure, closes what it started."""
    sinks: list[Sink] = []
    try:
        gate = None
        if cfg.relay.type != "none":
            from .relay import Gate

            gate = Gate.from_config(cfg.relay, **relay_kw)
            gate.start()
            sinks.append(gate)
        if cfg.mqtt.enabled:
            from .mqtt import MqttSink

            cams = [c.id for c in cfg.cameras]
            gate_cams = (cfg.relay.cameras or cams) if gate is not None else []
            mqtt = MqttSink(cfg.mqtt, cfg.storage, state_dir, cameras=cams, gate_cameras=gate_cams,
                            open_gate=open_gate if gate is not None else None)
            mqtt.start()
            sinks.append(mqtt)
            if gate is not None:
                gate.add_state_listener(mqtt.publish_gate_state)
                mqtt.publish_gate_state(gate.is_on)
        for i, hook in enumerate(cfg.webhooks):
            from .webhook import WebhookSink

            w = WebhookSink(hook, hook_id=i + 1)
            w.start()
            sinks.append(w)
    except BaseException:
        for s in reversed(sinks):
            try:
                s.close()
            except Exception:
                logger.exception("close failed sink=%s", type(s).__name__)
        raise
    return sinks


__all__ = ["Sink", "build_sinks", "crop_jpeg"]
