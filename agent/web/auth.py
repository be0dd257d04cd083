"""Who may use the API. On a loopback address: whoever can reach it (the machine's own users), with
the Host header checked so a web page cannot reach it by DNS rebinding. Bound elsewhere: a login
with the password from ``$CONSOLE_PASSWORD`` or the ``console_password`` credential, kept only as a
salted PBKDF2 hash; a session cookie (HttpOnly, SameSite=Strict); every write, in both cases, needs
the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..boundedhttp import is_loopback
from ..config import ConsoleConfig
from ..environ import secret
from .http import HttpError, Request

logger = logging.getLogger(__name__)

COOKIE = "plate_agent_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 16  # the oldest login goes first
PBKDF2_ITERATIONS = 200_000  # ~0.1 s on a desktop, ~0.5 s on a Pi 4: slow to guess, no memory cost
MAX_FAILURES = 5  # wrong passwords per client per FAILURE_WINDOW_S, then 429
FAILURE_WINDOW_S = 60.0


def _host_name(header: str) -> str:
    """``[::1]:8787`` -> ``::1``, ``localhost:8787`` -> ``localhost``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@dataclass
class Session:
    csrf: str
    expires: float  # monotonic


class Access:
    """Thread-safe (the HTTP threads share it)."""

    def __init__(self, cfg: ConsoleConfig, bind: str, *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cfg = cfg
        self.loopback = is_loopback(bind)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._failures: dict[str, deque[float]] = {}
        self._local_csrf = secrets.token_urlsafe(32)
        self._salt = secrets.token_bytes(16)
        self._hash: bytes | None = None
        if not self.loopback:
            password = secret(cfg.password_env, environ)
            if password:
                self._hash = self._derive(password)
            else:
                logger.error("the API is bound to %s and $%s is not set: nobody can log in", bind, cfg.password_env)

    @property
    def login_required(self) -> bool:
        return not self.loopback

    @property
    def password_set(self) -> bool:
        return self._hash is not None

    def _derive(self, password: str) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode(), self._salt, PBKDF2_ITERATIONS)

    # ------------------------------------------------------------ every request

    def check_host(self, req: Request) -> None:
        """On loopback, only a loopback Host: a page of another site cannot rebind its name to us."""
        if self.loopback and not is_loopback(_host_name(req.header("host")).lower()):
            raise HttpError(403, "on a loopback address the API answers only to a loopback Host")

    def session(self, req: Request) -> Session | None:
        """The request's session (on loopback: the machine's one session); None without a valid login."""
        if self.loopback:
            return Session(self._local_csrf, float("inf"))
        token = req.cookie(COOKIE)
        if not token:
            return None
        with self._lock:
            s = self._sessions.get(token)
            if s is None or s.expires <= self._clock():
                self._sessions.pop(token, None)
                return None
            s.expires = self._clock() + self._cfg.session_ttl_s  # a session lasts while it is used
            return s

    def require(self, req: Request, write: bool) -> Session:
        """The session, and for a write its CSRF token; HttpError 401 / 403 otherwise."""
        s = self.session(req)
        if s is None:
            raise HttpError(401, "log in first: POST /api/login")
        if write:
            sent = req.header(CSRF_HEADER)
            if not sent or not hmac.compare_digest(sent.encode(), s.csrf.encode()):
                raise HttpError(403, f"a write needs the session's CSRF token in {CSRF_HEADER} (GET /api/session)")
        return s

    # ------------------------------------------------------------ login

    def login(self, req: Request, password: str) -> tuple[str, Session]:
        """A new session (token, session) for the right password; HttpError 401 / 429 / 503 otherwise."""
        if self.loopback:
            return "", Session(self._local_csrf, float("inf"))
        if self._hash is None:
            raise HttpError(503, f"no password is set: set ${self._cfg.password_env} or the credential "
                                 f"{self._cfg.password_env.lower()} and restart")
        now = self._clock()
        with self._lock:
            tries = self._failures.setdefault(req.client, deque())
            while tries and now - tries[0] > FAILURE_WINDOW_S:
                tries.popleft()
            if len(tries) >= MAX_FAILURES:
                raise HttpError(429, f"too many wrong passwords; wait {FAILURE_WINDOW_S:g} s")
        if not hmac.compare_digest(self._derive(password), self._hash):
            with self._lock:
                self._failures.setdefault(req.client, deque()).append(now)
                if len(self._failures) > 256:  # a bounded memory of who failed
                    self._failures.pop(next(iter(self._failures)))
            logger.warning("console login failed client=%s", req.client)
            raise HttpError(401, "wrong password")
        token, s = secrets.token_urlsafe(32), Session(secrets.token_urlsafe(32), now + self._cfg.session_ttl_s)
        with self._lock:
            self._failures.pop(req.client, None)
            self._sessions[token] = s
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        logger.info("console login client=%s", req.client)
        return token, s

    def logout(self, req: Request) -> None:
        with self._lock:
            self._sessions.pop(req.cookie(COOKIE), None)

    def cookie(self, token: str) -> str:
        """The Set-Cookie value: not readable by scripts, never sent by another site's page."""
        if not token:
            return f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        return f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={int(self._cfg.session_ttl_s)}"


__all__ = ["COOKIE", "CSRF_HEADER", "Access", "Session"]
