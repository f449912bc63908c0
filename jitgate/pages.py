"""The web inbox: server-rendered pages where approvers decide and anyone involved follows.

``GET /inbox`` — the pending requests the user may still decide, and their own requests.
``GET /requests/{id}`` — one request (masked SQL, class, reasons, estimate, cap, approvals
so far, decisions, state, masked outcome, sessions) with Approve and Reject forms for an
approver who has not voted; only the requester and the request's approver groups see it
(404 for anyone else). ``POST /requests/{id}/decide`` (form fields ``verdict``, ``reason``
— required to reject — and ``max_rows``) records the decision with ``via: "web"`` and
redirects back (303); a refusal (self-approval, not an approver, already decided or voted,
expired) re-renders the page with the core's message (403/409/404) and changes nothing.
``GET /sessions/{id}`` — a session's statements from the audit trail, SQL masked; for its
own user and the approvers of its resource.
``GET|POST /login``, ``POST /logout`` — who the user is (see :mod:`jitgate.webauth`); with
``oidc`` configured, ``GET /login`` signs in with the IdP instead (:mod:`jitgate.signin`).

Pages need a user: a GET without one is redirected (303) to ``/login?next=…``, a POST gets
401. Every POST must come from our own origin (``Origin``/``Referer``), else 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import quote
from uuid import UUID

from aiohttp import web

from approvals.decisions import awaits
from approvals.display import shown
from approvals.model import RequestView, State
from jitgate import templates as t
from jitgate.agent_pages import AgentPages
from jitgate.api import REFUSAL_STATUS, awaiting, may_see, mine
from jitgate.errors import DecisionRefused, SignInRefused, StoreUnavailable
from jitgate.gateway import Gateway
from jitgate.signin import OidcSignIn
from jitgate.webauth import (
    STORE_ERRORS,
    clear_login_cookies,
    next_path,
    page_user,
    same_origin,
    set_login_cookie,
    token_user,
)
from masking import mask_text

PageHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TIMELINE_LIMIT = 2000
# No script may run and no other site may frame a page: a second line behind escaping, and
# no clickjacking of the Approve button.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Pages:
    """The page handlers, bound to one gateway; :meth:`routes` mounts them."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.directory = gateway.directory
        self.sign_in = OidcSignIn(gateway, self._html) if gateway.oidc is not None else None
        self.agents = AgentPages(gateway, self._html)

    def routes(self) -> list[web.RouteDef]:
        if self.sign_in is not None:
            login = self.sign_in.routes()
        else:
            login = [
                web.get("/login", self.login_page),
                web.post("/login", self.login),
                web.post("/logout", self.logout),
            ]
        return [
            web.get("/", self.home),
            *login,
            web.get("/inbox", self._signed_in(self.inbox)),
            web.get(r"/requests/{id:\d+}", self._signed_in(self.request_page)),
            web.post(r"/requests/{id:\d+}/decide", self._signed_in(self.decide)),
            web.get("/sessions/{id}", self._signed_in(self.session_page)),
            web.get("/agents", self._signed_in(self.agents.page)),
            web.post("/agents", self._signed_in(self.agents.grant)),
            web.post("/agents/revoke", self._signed_in(self.agents.revoke)),
        ]

    def _signed_in(self, handler: PageHandler) -> Handler:
        async def signed_in(request: web.Request) -> web.StreamResponse:
            if request.method == "POST" and not same_origin(request, self.config):
                return self._html("Refused", t.message("cross-site request refused"), None, 403)
            try:
                user = await page_user(
                    request, self.config, self.directory, self.gateway.web_sessions
                )
                if user is None and request.method == "POST":
                    body = t.message("you are not logged in") + '<a href="/login">Log in</a>'
                    return self._html("Log in first", body, None, 401)
                if user is None:
                    raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe="/"))
                return await handler(request, user)
            except SignInRefused as exc:
                assert self.sign_in is not None
                return self.sign_in.refused(request, exc)
            except StoreUnavailable as exc:
                return self._html("Unavailable", t.message(str(exc)), None, 503)
            except STORE_ERRORS as exc:
                return self._html("Unavailable", t.message(f"the store failed: {exc}"), None, 503)

        return signed_in

    def _html(self, title: str, body: str, user: str | None, status: int = 200) -> web.Response:
        text = t.page(title, body, user, demo=self.config.demo)
        return web.Response(text=text, status=status, content_type="text/html", headers=HEADERS)

    async def home(self, _request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/inbox")

    async def login_page(self, request: web.Request, note: str | None = None) -> web.Response:
        users = self.directory.configured_users()
        form = t.login_form(self.config.demo, users, next_path(request.query))
        return self._html("Log in", t.message(note) + form, None, 401 if note else 200)

    async def login(self, request: web.Request) -> web.Response:
        if not same_origin(request, self.config):
            return self._html("Refused", t.message("cross-site request refused"), None, 403)
        form = await request.post()
        if self.config.demo:
            value = str(form.get("user", "")).strip().lower()
            valid = value in self.directory.configured_users()
        else:
            value = str(form.get("token", "")).strip()
            try:
                valid = await token_user(self.directory, value) is not None
            except StoreUnavailable as exc:
                return self._html("Unavailable", t.message(str(exc)), None, 503)
        if not valid:
            return await self.login_page(request, "unknown user or invalid token")
        response = web.HTTPSeeOther(next_path(form))
        set_login_cookie(response, self.config, value)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        if not same_origin(request, self.config):
            return self._html("Refused", t.message("cross-site request refused"), None, 403)
        response = web.HTTPSeeOther("/login")
        clear_login_cookies(response)
        raise response

    async def inbox(self, _request: web.Request, user: str) -> web.Response:
        body = t.inbox(await awaiting(self.gateway, user), await mine(self.gateway, user))
        return self._html("Inbox", body, user)

    async def request_page(
        self, request: web.Request, user: str, note: str | None = None, status: int = 200
    ) -> web.Response:
        view = await self.gateway.approvals.store.view(int(request.match_info["id"]))
        if view is None or not may_see(self.directory, user, view):
            # A refused decision still gets its reason, even from someone who may not look.
            if note is not None:
                return self._html("Refused", t.message(note), user, status)
            return self._html("Not found", t.message("no such request"), user, 404)
        view = shown(self.config, view)
        hint = None
        if view.state == State.PENDING and user == view.requester:
            hint = "Waiting for an approver; you cannot approve your own request."
        body = t.message(note) + t.request_detail(view, await self._sessions(view), hint)
        if awaits(self.directory, user, view):
            body += t.decision_forms(view)
        return self._html(f"Request #{view.id}", body, user, status)

    async def decide(self, request: web.Request, user: str) -> web.Response:
        form = await request.post()
        verdict = str(form.get("verdict", ""))
        reason = str(form.get("reason", "")).strip() or None
        max_rows = str(form.get("max_rows", "")).strip()
        if verdict not in ("approve", "reject"):
            return await self.request_page(request, user, "choose Approve or Reject", 400)
        if verdict == "reject" and reason is None:
            return await self.request_page(request, user, "a rejection needs a reason", 400)
        if max_rows and (not max_rows.isdigit() or int(max_rows) < 1):
            return await self.request_page(request, user, "rows must be a positive number", 400)
        request_id = int(request.match_info["id"])
        try:
            await self.gateway.approvals.decide(
                request_id, user, "approve" if verdict == "approve" else "reject", via="web",
                reason=reason, max_rows=int(max_rows) if max_rows else None,
            )  # fmt: skip
        except DecisionRefused as exc:
            status = REFUSAL_STATUS.get(exc.code, 403)
            return await self.request_page(request, user, str(exc), status)
        raise web.HTTPSeeOther(f"/requests/{request_id}")

    async def session_page(self, request: web.Request, user: str) -> web.Response:
        pool = self.gateway.pool
        try:
            session = await pool.fetchrow(
                "SELECT * FROM sessions WHERE id = $1", UUID(request.match_info["id"])
            )
        except ValueError:
            session = None
        resource = self.config.resources.get(session["resource"]) if session else None
        approver = resource is not None and bool(
            self.directory.groups_of(user) & set(resource.approvers)
        )
        if session is None or (session["identity"] != user and not approver):
            return self._html("Not found", t.message("no such session"), user, 404)
        events = [
            {**dict(e), "sql": mask_text(e["sql"]).value}
            for e in await pool.fetch(
                "SELECT * FROM statement_events WHERE session_id = $1 ORDER BY seq LIMIT $2",
                session["id"],
                TIMELINE_LIMIT,
            )
        ]
        body = t.session_timeline(dict(session), events)
        return self._html(f"Session {session['id']}", body, user)

    async def _sessions(self, view: RequestView) -> list[str]:
        """The session the request came from and the ones that ran it (the audit trail names
        the request on its statements). Batches are searched from a little before the
        request was made, so the scan stays on recent rows (BRIN on ``started_at``)."""
        found = await self.gateway.pool.fetch(
            "SELECT DISTINCT b.session_id FROM statement_batches b"
            " CROSS JOIN LATERAL json_array_elements(b.events::json) e"
            " WHERE b.started_at >= $2 AND (e ->> 12)::bigint = $1",
            view.id,
            view.created_at - timedelta(minutes=10),
        )
        ids = [str(view.session_id)] if view.session_id else []
        return ids + [str(r[0]) for r in found if str(r[0]) not in ids]
