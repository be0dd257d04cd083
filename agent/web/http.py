"""A small router over the standard library's HTTP server: a request in, a response out, routes by
method and path pattern (``/api/events/{id}``). Pages and static assets are routes like the API.

The server (``status.StatusServer``) builds the ``Request`` with a bounded body and sends the
``Response``; handlers never touch sockets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY = 64 * 1024  # a rule or a login is a few hundred bytes
MAX_QUERY = 2048  # characters of the query string
SEGMENT = r"[A-Za-z0-9_.\-]{1,64}"  # what a {name} in a route matches: never a slash, never empty


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    client: str = ""  # the peer's address
    params: Mapping[str, str] = field(default_factory=dict)  # the route's {names}

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def cookie(self, name: str) -> str:
        for part in self.header("cookie").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return ""

    def json(self) -> Any:
        """The body as JSON; HttpError 400 when it is not."""
        if "json" not in self.header("content-type"):
            raise HttpError(415, "send the body as application/json")
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise HttpError(400, f"the body is not JSON: {err}") from err


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class HttpError(Exception):
    """Raised by a handler: answered as ``{"error": message}`` with this status."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def json_response(doc: Any, status: int = 200) -> Response:
    # "<" as \u003c: a plate (outside text) in the JSON can never close a <script> a page puts it in
    body = json.dumps(doc, separators=(",", ":")).replace("<", "\\u003c").encode()
    return Response(status, body)


def error_response(err: HttpError) -> Response:
    return json_response({"error": str(err), **err.extra}, err.status)


def parse_query(raw: str) -> dict[str, str]:
    """``a=1&b=2`` -> dict (the last value of a repeated key); HttpError 414/400 when too long or bad."""
    if len(raw) > MAX_QUERY:
        raise HttpError(414, f"query longer than {MAX_QUERY} characters")
    try:
        return dict(parse_qsl(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=32))
    except ValueError as err:
        raise HttpError(400, f"bad query: {err}") from err


def read_request(h: BaseHTTPRequestHandler) -> Request:
    """The request a server's handler is serving, its body read (at most MAX_BODY); HttpError when
    it is too large, chunked or its query too long."""
    path, _, raw_query = h.path.partition("?")
    if h.headers.get("Transfer-Encoding"):
        raise HttpError(411, "send a Content-Length")
    try:
        length = int(h.headers.get("Content-Length") or 0)
    except ValueError as err:
        raise HttpError(400, "bad Content-Length") from err
    if not 0 <= length <= MAX_BODY:
        raise HttpError(413, f"the body is limited to {MAX_BODY} bytes")
    query = parse_query(raw_query)
    body = h.rfile.read(length) if length else b""
    return Request(h.command, path, query, {k.lower(): v for k, v in h.headers.items()}, body, h.client_address[0])


Handler = Callable[[Request], Response]


class Router:
    """Routes in the order added; a path with a route but not for this method answers 405."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>{SEGMENT})", re.escape(pattern))
        self._routes.append((method, re.compile(regex), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        """The handler and its {names}; HttpError 405 when only another method matches."""
        allowed = []
        for m, regex, handler in self._routes:
            found = regex.fullmatch(path)
            if found is None:
                continue
            if m == method:
                return handler, found.groupdict()
            allowed.append(m)
        if allowed:
            raise HttpError(405, f"{method} not allowed here (allowed: {', '.join(sorted(set(allowed)))})")
        return None


__all__ = ["MAX_BODY", "HttpError", "Request", "Response", "Router", "error_response", "json_response",
           "parse_query", "read_request"]
