"""Why a plate read failed, as types the worker can act on (retry, wait, pause, shrink, drop).

Every class refines ``ReaderError``; no ``requests`` exception leaves this package.
"""

from __future__ import annotations

from ..errors import ReaderError


class Throttled(ReaderError):
    """HTTP 429: too many lookups per second; try again after ``retry_after_s``."""

    kind = "throttled"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forbidden(ReaderError):
    """HTTP 401/403: wrong token or no credits left. Retrying soon only burns goodwill."""

    kind = "forbidden"


class TooLarge(ReaderError):
    """HTTP 413: the upload is over the service's size limit."""

    kind = "too_large"


class Rejected(ReaderError):
    """Another HTTP 4xx: the service refused this request; sending it again will not help."""

    kind = "rejected"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unavailable(ReaderError):
    """The service could not answer now (5xx, timeout, connection); worth retrying later."""

    kind = "unavailable"


class ServerError(Unavailable):
    """HTTP 5xx."""

    kind = "server_error"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Timeout(Unavailable):
    """No answer within the connect or read timeout."""

    kind = "timeout"


class ConnectionFailed(Unavailable):
    """Connection refused, reset or dropped before a full answer."""

    kind = "connection"


class BadResponse(ReaderError):
    """An answer we cannot use: not JSON, wrong shape or types, too big, or an ``error`` body."""

    kind = "bad_response"


def error_kind(err: BaseException) -> str:
    """The short name counted in stats for ``err``."""
    return str(getattr(err, "kind", "") or "other")


__all__ = [
    "BadResponse",
    "ConnectionFailed",
    "Forbidden",
    "ReaderError",
    "Rejected",
    "ServerError",
    "Throttled",
    "Timeout",
    "TooLarge",
    "Unavailable",
    "error_kind",
]
