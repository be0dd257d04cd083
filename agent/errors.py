"""Exception tree for the agent; each also inherits the builtin it refines."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError, ValueError):
    """The configuration is invalid; ``errors`` lists every problem, each naming its key path."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class SourceError(AgentError, OSError):
    """A frame source could not be opened or stopped delivering frames."""


class DetectorError(AgentError, RuntimeError):
    """The on-device detector could not be loaded or run."""


class ReaderError(AgentError, RuntimeError):
    """A plate read failed: transport, HTTP status or an unusable response body."""


class SinkError(AgentError, RuntimeError):
    """An output (MQTT, relay, webhook) failed."""
