"""A running API on loopback for the tests: the real status server with the console's router, an
event store and a rules file on disk, and a small HTTP client that keeps its cookie."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import config
from agent.config import ConsoleConfig, HistoryConfig, StatusConfig
from agent.history import EventStore
from agent.rulefile import RulesFile
from agent.rules import AccessRules
from agent.status import StatusBoard, StatusServer
from agent.web.api import Console, Parts
from agent.web.auth import Access
from agent.web.live import LiveFrames


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host  # the Host header sent
        self.cookie = ""
        self.csrf = ""

    def call(self, method: str, path: str, body: Any = None, *, csrf: bool = True, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookie:
            h["Cookie"] = self.cookie
        if csrf and self.csrf and method != "GET":
            h["X-CSRF-Token"] = self.csrf
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        answer = Answer(r.status, r.headers, r.read())
        conn.close()
        for value in answer.headers.get_all("Set-Cookie") or []:
            self.cookie = value.split(";", 1)[0]
        return answer

    def get(self, path: str) -> Answer:
        return self.call("GET", path)

    def session(self) -> dict[str, Any]:
        doc = self.get("/api/session").json()
        self.csrf = doc["csrf"] or ""
        return doc  # type: ignore[no-any-return]


class Api:
    """Store, rules and server; ``close()`` stops them."""

    def __init__(self, tmp: Path, *, bind: str = "127.0.0.1", environ: dict[str, str] | None = None,
                 rules_csv: str = "plate,label,list\n# staff\nAB123CD,Alice,allow\n",
                 live: LiveFrames | None = None) -> None:
        self.rules_path = tmp / "rules.csv"
        self.rules_path.write_text(rules_csv)
        self.rules_path.chmod(0o640)
        cfg = config.parse({"cameras": [{"id": "gate", "source": "clip.mp4"}],
                            "rules": {"file": str(self.rules_path), "deny": [{"plate": "XY999ZZ"}]}})
        self.rules = AccessRules(cfg.rules, synchronised=lambda: True)
        self.rules.load()
        self.store = EventStore(HistoryConfig(), tmp / "history.sqlite3").open()
        board = StatusBoard(lambda: {"cameras": {}, "reader": {"state": "ok", "usage": {"calls": 12, "limit": 2500}}},
                            frame_timeout_s={}, reader_type="cloud")
        access = Access(ConsoleConfig(), bind, environ=environ or {})
        console = Console(Parts(self.rules, RulesFile(self.rules_path, self.rules.reload), board, self.store, live),
                          access)
        self.server = StatusServer(StatusConfig(bind=bind, port=0), board, console)
        self.server.start()
        self.client = Client(self.server.port)

    def close(self) -> None:
        self.server.close()
        self.store.close()
