"""sd_notify over a real unix datagram socket, as systemd receives it."""

from __future__ import annotations

import os
import socket

from agent.notify import Notifier


def test_messages_reach_the_notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.enabled and n.watchdog_s == 30.0
        assert n.ready("starting\nup")
        assert server.recv(4096) == b"READY=1\nSTATUS=starting up"  # one line: no stray field
        assert n.ready("ok\r\n") and server.recv(4096) == b"READY=1\nSTATUS=ok"
        assert n.watchdog() and server.recv(4096) == b"WATCHDOG=1"
        assert n.status("2 cameras\nok") and server.recv(4096) == b"STATUS=2 cameras ok"
        assert n.status("a\r\nb\rc\n") and server.recv(4096) == b"STATUS=a b c"
        assert n.stopping() and server.recv(4096) == b"STOPPING=1"
        n.close()
    finally:
        server.close()


def test_abstract_socket_and_watchdog_for_another_pid():
    n = Notifier({"NOTIFY_SOCKET": "@plate-agent-test", "WATCHDOG_USEC": "10", "WATCHDOG_PID": "1"})
    assert n.address == "\0plate-agent-test" and n.watchdog_s == 0.0


def test_without_systemd_every_call_is_a_no_op(tmp_path):
    n = Notifier({})
    assert not n.enabled and not n.ready() and not n.watchdog()
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not gone.watchdog() and not gone.watchdog()  # failure logged once, never raised
