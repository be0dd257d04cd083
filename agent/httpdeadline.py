"""HTTP with a whole deadline per request and a capped answer, for the reader and the webhooks.

``requests`` times out per socket operation only: a server that sends one byte every half second
holds a request for ever. Here a timer shuts the request's socket down when the request's total
time is up (status line, headers and body alike), and the body is read in chunks up to a cap.
No ``requests`` exception leaves this module.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import AgentError

CHUNK_BYTES = 16384


class HttpError(AgentError, OSError):
    """A request failed; the subclass says how."""


class DeadlineExceeded(HttpError):
    """No complete answer within the request's total time (connect, send, status, headers, body)."""


class AnswerTooLarge(HttpError):
    """The answer's body is over the cap; it was not read further. ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestFailed(HttpError):
    """Refused, reset or cut off before a complete answer."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


# ---------------------------------------------------------------- the deadline


_local = threading.local()  # the deadline of the request this thread is making, if any


class _Deadline:
    """Shuts the attached socket down once ``total_s`` has passed (a blocked read then returns)."""

    def __init__(self, total_s: float) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.expired = False
        self._timer = threading.Timer(total_s, self._expire)
        self._timer.name = "http-deadline"
        self._timer.daemon = True

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)

    def __enter__(self) -> _Deadline:
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _local.deadline = None


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown (not SSLSocket's, which drops its TLS state): the fd is woken
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed, or detached while TLS wrapped it
        pass


def _attach(sock: socket.socket | None) -> None:
    deadline: _Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


class _Conn(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:  # a kept-alive connection: its socket now
        _attach(self.sock)
        super().request(*args, **kwargs)


class _TlsConn(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)  # the TLS handshake counts too
        return sock

    def connect(self) -> None:
        super().connect()
        _attach(self.sock)  # the TLS socket replaced the plain one

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Conn


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConn


POOLS = {"http": _Pool, "https": _TlsPool}


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is ProxyManager:  # not SOCKS, which has pools of its own
            manager.pool_classes_by_scheme = POOLS
        return manager


def session() -> requests.Session:
    """A session whose requests can be given a whole deadline by ``fetch``."""
    s = requests.Session()
    s.mount("http://", _Adapter())
    s.mount("https://", _Adapter())
    return s


# ---------------------------------------------------------------- one request


def fetch(s: requests.Session, method: str, url: str, *, connect_s: float, read_s: float, total_s: float,
          max_bytes: int, **kwargs: Any) -> Answer:
    """One request, over within ``total_s``: ``connect_s`` for the TCP connect, ``read_s`` of silence
    at most, its body at most ``max_bytes``; raises ``DeadlineExceeded``, ``AnswerTooLarge`` or
    ``RequestFailed``."""
    start = time.monotonic()
    with _Deadline(total_s) as deadline:
        try:
            resp = s.request(method, url, timeout=(connect_s, read_s), stream=True, **kwargs)
            try:
                body = _read(resp, max_bytes)
            finally:
                resp.close()
        except requests.RequestException as err:
            if deadline.expired or time.monotonic() - start >= total_s:
                raise DeadlineExceeded(f"no complete answer within {total_s:g} s") from err
            if isinstance(err, requests.Timeout):
                raise DeadlineExceeded(f"no connection or no answer ({connect_s:g} s / {read_s:g} s)") from err
            raise RequestFailed(type(err).__name__) from err
    return Answer(resp.status_code, body, resp.headers)


def _read(resp: requests.Response, max_bytes: int) -> bytes:
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge(f"answer of {declared} bytes, more than {max_bytes}", resp.status_code)
    chunks, total = [], 0
    for chunk in resp.iter_content(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise AnswerTooLarge(f"answer larger than {max_bytes} bytes", resp.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["Answer", "AnswerTooLarge", "DeadlineExceeded", "HttpError", "RequestFailed", "fetch", "session"]
