"""Secrets out of URLs, for every log line, ``/status`` and the MQTT summary: the one place that
decides what of a URL may be shown.

A URL keeps its scheme, host and port. Its ``user:password@`` is hidden whole (split on the last
``@``: a password may hold one), every query value and the fragment are hidden, and a path segment
after ``webhook``/``token``-like segments (a Home Assistant webhook id) is hidden; with
``path=False`` (webhook targets: their path is often the secret) the whole path is shown as ``***``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

HIDDEN = "***"
# segments whose next segment is a secret: /api/webhook/<id>, /token/<t>, /key/<k>
SECRET_AFTER = frozenset({"webhook", "webhooks", "hook", "hooks", "token", "tokens", "key", "keys", "secret",
                          "secrets", "apikey", "api_key", "api-key", "auth"})
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# the same in text that is not a whole URL ('POST /api/webhook/<id> HTTP/1.1', '?token=...')
_SEGMENT = re.compile(r"(?i)(/(?:" + "|".join(re.escape(s) for s in sorted(SECRET_AFTER)) + r")/)([^/\s?#'\"]+)")
_QUERY = re.compile(r"([?&][\w.-]+=)([^&\s#'\"]+)")
_AUTHORITY_END = re.compile(r"[/?#]")
_FORMATTER = logging.Formatter()


def url(value: str, *, path: bool = True) -> str:
    """``value`` safe to show; a string that is not a URL is returned as it is."""
    scheme, sep, rest = value.partition("://")
    if not sep or not scheme:
        return value
    at = rest.rfind("@")  # anywhere: a raw '/', '?' or '@' in a password must not leak its tail
    userinfo = f"{HIDDEN}@" if at >= 0 else ""
    rest = rest[at + 1:]
    m = _AUTHORITY_END.search(rest)
    host, tail = (rest[:m.start()], rest[m.start():]) if m else (rest, "")
    tail, hashmark, _ = tail.partition("#")
    route, qmark, query = tail.partition("?")
    if not path:
        shown = "/" + HIDDEN if route.strip("/") or qmark or hashmark else route
        return f"{scheme}://{userinfo}{host}{shown}"
    out = f"{scheme}://{userinfo}{host}{_path(route)}"
    if qmark:
        out += "?" + "&".join(_param(p) for p in query.split("&"))
    if hashmark:
        out += "#" + HIDDEN
    return out


def text(value: str) -> str:
    """``value`` with every URL, secret path segment and query value in it hidden (free text)."""
    if "://" in value:
        value = _URL.sub(lambda m: url(m.group(0)), value)
    if "/" in value:
        value = _SEGMENT.sub(lambda m: m.group(1) + HIDDEN, value)
    if "=" in value:
        value = _QUERY.sub(lambda m: m.group(1) + HIDDEN, value)
    return value


def guard_logs() -> None:
    """Every log record from now on, any library's included, has its message (and traceback)
    passed through ``text``: a URL that reaches a log line by any path is shown redacted."""
    old = logging.getLogRecordFactory()
    if getattr(old, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        try:
            record.msg, record.args = text(record.getMessage()), ()
            if record.exc_info:
                record.exc_text = text(_FORMATTER.formatException(record.exc_info))
        except Exception:  # a broken log call stays the logging module's problem, as before
            pass
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _path(route: str) -> str:
    segments = route.split("/")
    for i in range(1, len(segments)):
        if segments[i - 1].lower() in SECRET_AFTER and segments[i]:
            segments[i] = HIDDEN
    return "/".join(segments)


def _param(pair: str) -> str:
    if not pair:
        return pair
    name, eq, _ = pair.partition("=")
    return f"{name}={HIDDEN}" if eq else HIDDEN


__all__ = ["HIDDEN", "guard_logs", "text", "url"]
