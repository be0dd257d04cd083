"""Relay off before anything else at start: a config or rules error must never leave a latched relay on.

The settings come from the ``[relay]`` table alone, read leniently (only the keys that switch it off),
or else from the last good relay settings kept in the state directory by an earlier start.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Config, RelayConfig, StorageConfig
from .environ import state_dir
from .errors import AgentError
from .schema import build

logger = logging.getLogger(__name__)

SAVED = "relay-last-good.json"
# what drives the relay off; a bad pulse_s or camera list must not stop that
OFF_KEYS = ("type", "pin", "active_high", "port", "baud", "protocol", "channel", "on_bytes", "off_bytes")


def _from_table(table: Mapping[str, Any], where: str) -> RelayConfig | None:
    """A RelayConfig from the keys that switch it off; None when one of them is wrong or missing."""
    errors: list[str] = []
    off = {k: table[k] for k in OFF_KEYS if k in table}
    cfg = build(RelayConfig, off, "relay", errors)
    if cfg is None or errors or (cfg.type == "gpio" and not cfg.pin) or (cfg.type == "serial" and not cfg.port):
        logger.warning("relay settings in %s unusable for the off at start: %s", where,
                       "; ".join(errors) or "incomplete")
        return None
    return cfg


def _saved_path(doc: Mapping[str, Any] | None) -> Path:
    storage = doc.get("storage") if doc is not None else None
    folder = storage.get("state_dir") if isinstance(storage, dict) else None
    cfg = StorageConfig(state_dir=folder) if isinstance(folder, str) else StorageConfig()
    return state_dir(cfg) / SAVED


def relay_settings(config_path: str | os.PathLike[str]) -> RelayConfig | None:
    """The relay to drive off: from the config file's ``[relay]`` table, else the last good one saved."""
    doc: dict[str, Any] | None = None
    try:
        doc = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        logger.warning("cannot read %s for the relay off at start: %s", config_path, err)
    if doc is not None:
        table = doc.get("relay", {})
        if isinstance(table, dict):
            cfg = _from_table(table, str(config_path))
            if cfg is not None:
                return cfg
    saved = _saved_path(doc)
    try:
        table = json.loads(saved.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("cannot read the last good relay settings %s: %s", saved, err)
        return None
    logger.warning("using the last good relay settings from %s", saved)
    return _from_table(table, str(saved)) if isinstance(table, dict) else None


def drive_off(config_path: str | os.PathLike[str], **driver_kw: Any) -> bool:
    """Open the relay, drive it off and release it. Never raises: True when an off was written."""
    from .sinks.relay import RELAYS

    cfg = relay_settings(config_path)
    if cfg is None or cfg.type == "none":
        return False
    driver = RELAYS[cfg.type](cfg, **driver_kw)
    try:
        driver.open()
        try:
            driver.set(False)
        finally:
            driver.close()
    except (AgentError, OSError) as err:
        logger.error("relay off at start failed: %s", err)
        return False
    except Exception:  # the off is best effort; the start goes on and reports what is wrong
        logger.exception("relay off at start failed")
        return False
    logger.info("relay driven off before start-up type=%s", cfg.type)
    return True


def remember(cfg: Config) -> None:
    """Keep the relay settings of a config that loaded, for a start whose config cannot be read."""
    path = state_dir(cfg.storage) / SAVED
    default = RelayConfig()
    # only the keys set: the others would be refused as not applying to this type of relay
    relay = {k: getattr(cfg.relay, k) for k in OFF_KEYS if k == "type" or getattr(cfg.relay, k) != getattr(default, k)}
    try:
        if path.is_file() and json.loads(path.read_text(encoding="utf-8")) == relay:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(relay), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, ValueError) as err:  # the disk's trouble is reported by the outboxes
        logger.warning("cannot keep the relay settings in %s: %s", path, err)


__all__ = ["SAVED", "drive_off", "relay_settings", "remember"]
