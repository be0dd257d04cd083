"""A hostile HTTP server on loopback: it reads the request, then answers one byte every ``every_s``
seconds (``head``: from the status line; ``body``: after quick headers), or (``flood``) sends a
body of ``flood_bytes`` as fast as the client takes it, with no length given."""

from __future__ import annotations

import socket
import threading
import time


class SlowLoris:
    def __init__(self, *, every_s: float = 0.5, trickle: str = "body", status: int = 200,
                 flood_bytes: int = 0) -> None:
        assert trickle in ("head", "body", "flood")
        self.flood_bytes = flood_bytes
        self.every_s = every_s
        self.trickle = trickle
        self.status = status
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.requests = 0
        self.bytes_sent = 0
        self._accepter = threading.Thread(target=self._accept, name="slowloris", daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), name="slowloris-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            try:
                self._read_request(conn)
                self.requests += 1
                head = f"HTTP/1.1 {self.status} OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                if self.trickle == "flood":
                    conn.sendall(f"HTTP/1.1 {self.status} OK\r\nConnection: close\r\n\r\n".encode())
                    block = b"x" * 65536
                    while self.bytes_sent < self.flood_bytes and not self._stop.is_set():
                        conn.sendall(block)
                        self.bytes_sent += len(block)
                    return
                if self.trickle == "body":
                    conn.sendall(head.encode())
                    payload = b"{" + b" " * 200_000
                else:
                    payload = head.encode() + b"{" + b" " * 200_000
                for i in range(len(payload)):
                    if self._stop.wait(self.every_s):
                        return
                    conn.sendall(payload[i:i + 1])
                    self.bytes_sent += 1
            except OSError:  # the client gave up: what this server is for
                return

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        deadline = time.monotonic() + 5.0
        while len(body) < length and time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(2.0)

    def __enter__(self) -> SlowLoris:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
