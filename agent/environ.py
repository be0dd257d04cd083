"""What the agent takes from its environment rather than its config file: secrets (environment variables
or systemd credentials) and the directory for durable state."""

from __future__ import annotations

import os
import typing
from pathlib import Path

from .config import StorageConfig


def secret(name: str, environ: typing.Mapping[str, str] | None = None) -> str | None:
    """A secret from the environment (``NAME``) or a systemd credential file.

    The credential may be named ``NAME`` or ``name`` in ``$CREDENTIALS_DIRECTORY``. Values are
    stripped of surrounding whitespace; an empty value counts as unset. Never log the result.
    """
    env = os.environ if environ is None else environ
    value = env.get(name, "").strip()
    if value:
        return value
    cred_dir = env.get("CREDENTIALS_DIRECTORY", "")
    if cred_dir:
        for fname in (name, name.lower()):
            try:
                value = (Path(cred_dir) / fname).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if value:
                return value
    return None


def state_dir(cfg: StorageConfig, environ: typing.Mapping[str, str] | None = None) -> Path:
    """Where durable state (outboxes) lives: config, then systemd's StateDirectory, then ~."""
    env = os.environ if environ is None else environ
    if cfg.state_dir:
        return Path(cfg.state_dir)
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "plate-agent"


__all__ = ["secret", "state_dir"]
