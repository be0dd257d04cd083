"""A small HTTP server that cannot be flooded: a fixed pool of handler threads, a short queue of
accepted connections (more are answered 503 and closed at once), and a whole deadline per
connection from its accept (a timer shuts its socket down; a client sending a byte at a time
gains nothing)."""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

logger = logging.getLogger(__name__)

BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 18\r\n"
        b"Connection: close\r\n\r\n{\"error\": \"busy\"}\n")


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1`` or ``localhost``: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already gone
        pass


CLOSE_JOIN_S = 1.0  # all workers together, inside the agent's 5 s shutdown


class BoundedHTTPServer(HTTPServer):
    """``workers`` handler threads, ``queued`` connections waiting at most, ``deadline_s`` per
    connection from its accept, waiting included. ``rejected`` counts the connections turned away."""

    request_queue_size = 128  # the listen backlog: a full one makes new clients wait seconds for a retry

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 workers: int = 4, queued: int = 16, deadline_s: float = 5.0, name: str = "http") -> None:
        self._queue: queue.Queue[tuple[socket.socket, Any, float] | None] = queue.Queue(maxsize=queued)
        self._deadline_s = deadline_s
        self._workers = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        self.rejected = 0
        self._active: set[socket.socket] = set()  # being served: shut down at close
        self._lock = threading.Lock()
        super().__init__(address, handler)  # binds: server_close() on failure needs the above

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        for t in self._workers:
            t.start()
        super().serve_forever(poll_interval)

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._queue.put_nowait((request, client_address, time.monotonic() + self._deadline_s))
        except queue.Full:
            self.rejected += 1
            try:
                request.setblocking(False)  # never wait on a client that does not read
                request.send(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, client_address, deadline = item
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (request,))
            timer.daemon = True
            timer.start()
            with self._lock:
                self._active.add(request)
            try:
                self.finish_request(request, client_address)
            except Exception:  # this connection fails, the server goes on
                self.handle_error(request, client_address)
            finally:
                timer.cancel()
                with self._lock:
                    self._active.discard(request)
                self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("http connection failed client=%s", client_address, exc_info=True)

    def server_close(self) -> None:
        """Close what waits or is being served, and stop the workers."""
        super().server_close()
        with self._lock:
            for sock in self._active:
                _shut(sock)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._workers:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        end = time.monotonic() + CLOSE_JOIN_S  # the clients being served were shut down above
        for t in self._workers:
            if t.ident is not None:
                t.join(max(0.0, end - time.monotonic()))


__all__ = ["BoundedHTTPServer", "is_loopback"]
