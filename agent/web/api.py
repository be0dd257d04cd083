"""The JSON API under ``/api/`` (see README "JSON API"): events (and as CSV), an event's crop, a
plate's history, the rules (list, add, edit, remove), status, usage and each camera's live frame;
plus the console's pages (``/console/<page>``) and ``/static/`` assets bundled with the package.
``Console.handle`` is the one entry: access, then the route, then security headers.

Nothing here runs unless a request comes: every answer is computed from the parts when asked.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from ..history import EventStore
from ..history import query as q
from ..rulefile import RuleEditError, RulesFile, parse_body
from ..rules import AccessRules
from ..status import StatusBoard
from .auth import Access
from .export import events_csv
from .http import HttpError, Request, Response, Router, error_response, json_response
from .live import LiveFrames

logger = logging.getLogger(__name__)

PREFIXES = ("/api/", "/static/", "/console/")
PAGES = ("live", "events", "plate", "rules", "usage")  # /console/<page>: the template with static/<page>.js
PAGE_TEMPLATE = "page.html.in"  # not an asset: no /static/ type for it
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
)
# answered without a login: pages and assets hold no data, they log in through the API


@dataclass(frozen=True)
class Parts:
    """What the API reads and writes; built by the wiring."""

    rules: AccessRules
    rules_file: RulesFile | None
    board: StatusBoard  # the /status document
    store: EventStore | None
    live: LiveFrames | None = None


class Console:
    def __init__(self, parts: Parts, access: Access) -> None:
        self.parts = parts
        self.access = access
        self.router = Router()
        self._public: set[Callable[[Request], Response]] = set()
        self._add_routes()

    def _add_routes(self) -> None:
        add = self._add
        add("GET", "/api/session", self.session, public=True)
        add("POST", "/api/login", self.login, public=True)
        add("POST", "/api/logout", self.logout)
        add("GET", "/api/status", self.status)
        add("GET", "/api/usage", self.usage)
        add("GET", "/api/events", self.events)
        add("GET", "/api/events.csv", self.events_export)
        add("GET", "/api/events/{event_id}", self.event)
        add("GET", "/api/events/{event_id}/crop", self.crop)
        add("GET", "/api/events/{event_id}/frame", self.frame)
        add("GET", "/api/plates/{plate}", self.plate)
        add("GET", "/api/rules", self.rules)
        add("POST", "/api/rules", self.add_rule)
        add("PUT", "/api/rules/{rule_id}", self.edit_rule)
        add("DELETE", "/api/rules/{rule_id}", self.remove_rule)
        add("GET", "/api/cameras/{camera_id}/frame", self.live_frame)
        add("GET", "/static/{name}", self.static, public=True)
        add("GET", "/", self.home, public=True)
        add("GET", "/console/{page}", self.page, public=True)

    def _add(self, method: str, pattern: str, handler: Callable[[Request], Response], public: bool = False) -> None:
        self.router.add(method, pattern, handler)
        if public:
            self._public.add(handler)

    @staticmethod
    def owns(path: str) -> bool:
        return path == "/" or path.startswith(PREFIXES)

    def handle(self, req: Request) -> Response:
        """Any request under ``/api/`` or ``/static/``; never raises."""
        try:
            self.access.check_host(req)
            found = self.router.match(req.method, req.path)
            if found is None:
                raise HttpError(404, f"no such resource: {req.path}")
            handler, params = found
            if handler not in self._public:
                self.access.require(req, write=req.method not in ("GET", "HEAD"))
            resp = handler(Request(req.method, req.path, req.query, req.headers, req.body, req.client, params))
        except HttpError as err:
            resp = error_response(err)
        except Exception:  # this request fails, the server goes on
            logger.exception("api request failed method=%s path=%s", req.method, req.path)
            resp = json_response({"error": "internal error"}, 500)
        resp.headers += [*SECURITY_HEADERS, ("Cache-Control", "no-store")]
        return resp

    # ------------------------------------------------------------ access

    def session(self, req: Request) -> Response:
        s = self.access.session(req)
        return json_response({"login_required": self.access.login_required, "logged_in": s is not None,
                              "password_set": self.access.password_set or not self.access.login_required,
                              "csrf": s.csrf if s else None})

    def login(self, req: Request) -> Response:
        body = req.json()
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(password, str) or len(password) > 1024:
            raise HttpError(400, "send {\"password\": \"...\"}")
        token, s = self.access.login(req, password)
        resp = json_response({"logged_in": True, "csrf": s.csrf})
        if token:
            resp.headers.append(("Set-Cookie", self.access.cookie(token)))
        return resp

    def logout(self, req: Request) -> Response:
        self.access.logout(req)
        resp = json_response({"logged_in": False})
        resp.headers.append(("Set-Cookie", self.access.cookie("")))
        return resp

    # ------------------------------------------------------------ reading

    def status(self, req: Request) -> Response:
        return json_response(self.parts.board.document())

    def _store(self) -> EventStore:
        if self.parts.store is None:
            raise HttpError(404, "the event history is off ([history] enabled = false)")
        return self.parts.store

    def events(self, req: Request) -> Response:
        try:
            f = q.Filter.parse(dict(req.query))
        except q.QueryError as err:
            raise HttpError(400, str(err)) from err
        return json_response(q.events(self._store(), f))

    def events_export(self, req: Request) -> Response:
        try:
            f = q.Filter.parse(dict(req.query))
        except q.QueryError as err:
            raise HttpError(400, str(err)) from err
        resp = Response(200, events_csv(self._store(), f), "text/csv; charset=utf-8")
        resp.headers.append(("Content-Disposition", 'attachment; filename="events.csv"'))
        return resp

    def event(self, req: Request) -> Response:
        doc = q.event(self._store(), req.params["event_id"])
        if doc is None:
            raise HttpError(404, "no such event")
        return json_response(doc)

    def crop(self, req: Request) -> Response:
        return self._image(req, "crop")

    def frame(self, req: Request) -> Response:
        return self._image(req, "frame")

    def _image(self, req: Request, kind: str) -> Response:
        jpeg = q.image(self._store(), req.params["event_id"], kind)
        if jpeg is None:
            raise HttpError(404, f"no {kind} for this event")
        return Response(200, jpeg, "image/jpeg")

    def plate(self, req: Request) -> Response:
        return json_response(q.plate_history(self._store(), req.params["plate"]))

    def usage(self, req: Request) -> Response:
        try:
            days = int(req.query.get("days", "30"))
        except ValueError as err:
            raise HttpError(400, "days: must be a whole number") from err
        doc = self.parts.board.document()
        reader = doc.get("reader") or {}
        saved = {cid: {k: c.get(k) for k in ("frames_in", "frames_processed", "motion_frames", "plates", "uploads",
                                             "held")}
                 for cid, c in (doc.get("cameras") or {}).items()}
        paid = q.paid_per_day(self.parts.store, days) if self.parts.store is not None else None
        return json_response({"paid_per_day": paid, "quota": reader.get("quota"), "reader": reader.get("type"),
                              "since_start": saved})

    def live_frame(self, req: Request) -> Response:
        """The camera's last frame with zones and detections drawn; made now, only because a page asked."""
        if self.parts.live is None:
            raise HttpError(404, "no live view")
        try:
            jpeg = self.parts.live.jpeg(req.params["camera_id"])
        except KeyError as err:
            raise HttpError(404, "no such camera") from err
        if jpeg is None:
            raise HttpError(503, "no frame yet: ask again in a second")
        return Response(200, jpeg, "image/jpeg")

    # ------------------------------------------------------------ rules

    def rules(self, req: Request) -> Response:
        rf = self.parts.rules_file
        rows = [r.doc() for r in rf.rows()] if rf is not None else []
        inline = [{"id": None, "list": r.list, "plate": r.plate, "label": r.label, "cameras": sorted(r.cameras),
                   "schedule": r.schedule_text, "source": "config"}
                  for r in self.parts.rules.rules if r.source == "config"]
        return json_response({"file": str(rf.path) if rf else None, "writable": rf is not None,
                              "rules": inline + rows})

    def _rules_file(self) -> RulesFile:
        if self.parts.rules_file is None:
            raise HttpError(409, "no rules file: set rules.file to edit rules here")
        return self.parts.rules_file

    def add_rule(self, req: Request) -> Response:
        rf = self._rules_file()
        try:
            list_, entry = parse_body(req.json())
            row = rf.add(list_, entry)
        except RuleEditError as err:
            raise HttpError(err.status, str(err), errors=err.errors) from err
        return json_response(row.doc(), 201)

    def edit_rule(self, req: Request) -> Response:
        rf = self._rules_file()
        try:
            list_, entry = parse_body(req.json())
            row = rf.edit(req.params["rule_id"], list_, entry)
        except RuleEditError as err:
            raise HttpError(err.status, str(err), errors=err.errors) from err
        return json_response(row.doc())

    def remove_rule(self, req: Request) -> Response:
        try:
            self._rules_file().remove(req.params["rule_id"])
        except RuleEditError as err:
            raise HttpError(err.status, str(err), errors=err.errors) from err
        return json_response({"removed": req.params["rule_id"]})

    # ------------------------------------------------------------ pages and assets

    def home(self, req: Request) -> Response:
        return Response(302, b"", "text/plain", [("Location", "/console/live")])

    def page(self, req: Request) -> Response:
        page = req.params["page"]
        if page not in PAGES:
            raise HttpError(404, "no such page")
        template = resources.files(__package__).joinpath("static", PAGE_TEMPLATE).read_text(encoding="utf-8")
        html = string.Template(template).substitute(title=page.capitalize(), page=page)
        return Response(200, html.encode(), STATIC_TYPES[".html"])

    def static(self, req: Request) -> Response:
        """A file of ``agent/web/static`` by its bare name (the route admits no slash)."""
        return self._asset(req.params["name"])

    def _asset(self, name: str) -> Response:
        ctype = STATIC_TYPES.get(name[name.rfind("."):] if "." in name else "")
        item = resources.files(__package__).joinpath("static", name)
        if ctype is None or name.startswith(".") or not item.is_file():
            raise HttpError(404, "no such asset")
        return Response(200, item.read_bytes(), ctype)


__all__ = ["PAGES", "PREFIXES", "Console", "Parts"]
