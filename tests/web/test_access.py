"""Who may use the API: loopback without a login but with CSRF and a loopback Host; bound elsewhere
a login (hashed password, HttpOnly SameSite=Strict cookie), CSRF on every write, a bounded number
of wrong passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConsoleConfig
from agent.web.auth import Access
from tests.web.client import Api, Client

PASSWORD = "correct horse battery staple"


@pytest.fixture
def local(tmp_path: Path):
    a = Api(tmp_path)
    yield a
    a.close()


@pytest.fixture
def remote(tmp_path: Path):
    a = Api(tmp_path, bind="0.0.0.0", environ={"CONSOLE_PASSWORD": PASSWORD})
    yield a
    a.close()


def test_loopback_reads_without_login_but_writes_need_the_csrf_token(local: Api):
    c = local.client
    assert c.get("/api/events").status == 200
    rule = {"plate": "KX52ODV"}
    refused = c.call("POST", "/api/rules", rule)
    assert refused.status == 403 and "CSRF" in refused.json()["error"]
    c.csrf = "forged"
    assert c.call("POST", "/api/rules", rule).status == 403
    doc = c.session()
    assert doc["login_required"] is False and doc["csrf"]
    assert c.call("POST", "/api/rules", rule).status == 201
    assert "KX52ODV" in local.rules_path.read_text()


def test_loopback_answers_only_to_a_loopback_host(local: Api):
    """A page on evil.example whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    rebound = Client(local.server.port, host="evil.example")
    for method, path in (("GET", "/api/session"), ("GET", "/api/events"), ("POST", "/api/rules")):
        assert rebound.call(method, path, {}).status == 403
    assert Client(local.server.port, host="localhost").get("/api/events").status == 200
    assert Client(local.server.port, host="[::1]").get("/api/events").status == 200


def test_bound_elsewhere_everything_needs_a_login(remote: Api):
    c = remote.client
    for method, path in (("GET", "/api/events"), ("GET", "/api/rules"), ("GET", "/api/status"),
                         ("GET", "/api/events/" + "a" * 32 + "/crop"), ("POST", "/api/rules"),
                         ("DELETE", "/api/rules/abc"), ("GET", "/api/usage"), ("GET", "/api/plates/AB1")):
        answer = c.call(method, path, {})
        assert answer.status == 401, (method, path)
    assert c.session() == {"login_required": True, "logged_in": False, "password_set": True, "csrf": None}
    assert c.call("POST", "/api/login", {"password": "wrong"}).status == 401 and not c.cookie
    ok = c.call("POST", "/api/login", {"password": PASSWORD})
    assert ok.status == 200
    cookie = ok.headers["Set-Cookie"]
    flags = [f.strip() for f in cookie.split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/" in flags
    assert ok.json()["csrf"] and PASSWORD not in cookie
    assert c.get("/api/events").status == 200
    assert c.call("POST", "/api/rules", {"plate": "KX52ODV"}).status == 403  # logged in, but no token
    c.csrf = ok.json()["csrf"]
    assert c.call("POST", "/api/rules", {"plate": "KX52ODV"}).status == 201
    other = Client(remote.server.port)
    other.cookie, other.csrf = c.cookie, "guess"  # a stolen cookie without the token cannot write
    assert other.call("POST", "/api/rules", {"plate": "KX52ODW"}).status == 403
    assert c.call("POST", "/api/logout").status == 200
    assert c.get("/api/events").status == 401


def test_wrong_passwords_are_limited_and_no_password_means_no_login(remote: Api, tmp_path: Path):
    c = remote.client
    for _ in range(5):
        assert c.call("POST", "/api/login", {"password": "guess"}).status == 401
    assert c.call("POST", "/api/login", {"password": PASSWORD}).status == 429  # even the right one, for now
    none = Api(tmp_path / "x", bind="0.0.0.0") if (tmp_path / "x").mkdir() is None else None
    assert none is not None
    try:
        answer = none.client.call("POST", "/api/login", {"password": ""})
        assert answer.status == 503 and "CONSOLE_PASSWORD" in answer.json()["error"]
        assert none.client.get("/api/events").status == 401
    finally:
        none.close()


def test_the_password_is_kept_only_as_a_salted_hash(tmp_path: Path):
    cred = tmp_path / "creds"
    cred.mkdir()
    (cred / "console_password").write_text(PASSWORD + "\n")
    access = Access(ConsoleConfig(), "192.168.1.10", environ={"CREDENTIALS_DIRECTORY": str(cred)})
    assert access.password_set
    held = [v for v in vars(access).values() if isinstance(v, (str, bytes))]
    assert not any(PASSWORD in (v if isinstance(v, str) else v.decode("latin-1")) for v in held)
    assert access.login_required
    assert not Access(ConsoleConfig(), "::1").login_required and Access(ConsoleConfig(), "0.0.0.0").login_required
