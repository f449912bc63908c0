"""The REST API: ask for a statement, follow requests, decide them. JSON in and out.

Every call needs ``Authorization: Bearer <access token>`` (:mod:`jitgate.webauth`); a
missing, unknown, revoked or expired token gets ``401 {"error", "code": "unauthorized"}``
and nothing else happens. An agent's token (:mod:`identity.delegations`) asks as its human
with the agent named on the request, within what its delegation allows; it cannot decide
requests (403 ``agent_cannot_decide``). Errors are always ``{"error": <readable>, "code": <name>}``.

``POST /api/requests`` ``{"resource", "sql", "reason"?}``
    ``200 {"action": "allow", "outcome": OUTCOME}`` — policy allowed it; it ran once.
    ``202 {"action": "review", "request": REQUEST, "posted_to": [str]}`` — held for review.
    ``403`` codes ``denied``, ``unknown_resource``, ``no_access``; ``400 bad_request``;
    ``429 too_many_requests`` at ``postgres.limits.pending_requests_per_user``.
``GET /api/requests/{id}`` → ``REQUEST``; 404 ``not_found`` unless the caller is the
    requester or in one of the request's approver groups.
``GET /api/requests?mine=1`` → ``{"requests": [REQUEST]}``, the caller's own (the default);
    ``?pending=1``: pending requests the caller may still decide (not theirs, not voted on).
``POST /api/requests/{id}/decisions`` ``{"verdict": "approve"|"reject", "reason"?,
    "max_rows"?}`` → ``200 REQUEST``; refusals carry the core's code: 403 ``self_approval``,
    ``not_approver``; 409 ``already_decided``, ``already_voted``, ``expired``; 404
    ``unknown_request``. Recorded ``via: "cli"`` for jitgate's CLI (its User-Agent), else
    ``"api"``.

``REQUEST``: ``{"id", "resource", "requester", "agent", "sql" (sensitive literals masked),
"statement_class", "reasons": [str], "reason", "estimate", "max_rows", "state",
"state_reason", "final": bool, "source", "session_id", "approvals", "approvals_required",
"approver_groups": [str], "decisions": [{"approver", "verdict", "via", "reason",
"decided_at"}], "created_at", "expires_at", "outcome": OUTCOME | null, "url"}``.
``OUTCOME``: ``{"command_tag", "rows", "duration_ms", "sqlstate", "error", "columns":
[str], "preview": [[str | null]] (masked), "preview_truncated", "masked": {entity: count},
"summary"}``. Datetimes are ISO 8601 with a UTC offset; absent values are ``null``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from approvals import decisions
from approvals.display import shown, shown_outcome
from approvals.model import Outcome, RequestView
from identity import Directory, Principal
from jitgate.client import CLI_AGENT
from jitgate.config import Config
from jitgate.errors import DecisionRefused, StoreUnavailable
from jitgate.gateway import Gateway
from jitgate.webauth import STORE_ERRORS, bearer_principal

UserHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFUSAL_STATUS = {
    "self_approval": 403,
    "not_approver": 403,
    "already_decided": 409,
    "already_voted": 409,
    "expired": 409,
    "unknown_request": 404,
    "too_large": 413,
    "too_many_requests": 429,
}


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


def bearer_guarded(gateway: Gateway, handler: UserHandler) -> Handler:
    """``handler`` behind the Bearer token: authenticated first (401 without a valid one); a
    store outage is a 503, never a guess."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            who = await bearer_principal(request, gateway.directory)
            if who is None:
                return error(401, "unauthorized", "a valid access token is required")
            return await handler(request, who)
        except StoreUnavailable as exc:
            return error(503, "unavailable", str(exc))
        except STORE_ERRORS as exc:
            return error(503, "unavailable", f"the store failed: {exc}")

    return guarded


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """``outcome`` (already through :func:`shown_outcome`) as JSON."""
    return {
        "command_tag": outcome.command_tag,
        "rows": outcome.rows,
        "duration_ms": round(outcome.duration_ms, 3),
        "sqlstate": outcome.sqlstate,
        "error": outcome.error,
        "columns": list(outcome.columns),
        "preview": [list(row) for row in outcome.preview],
        "preview_truncated": outcome.preview_truncated,
        "masked": dict(outcome.masked),
        "summary": outcome.summary(),
    }


def request_json(config: Config, view: RequestView) -> dict[str, Any]:
    view = shown(config, view)
    return {
        "id": view.id,
        "resource": view.resource,
        "requester": view.requester,
        "agent": view.agent,
        "sql": view.sql,
        "statement_class": view.statement_class,
        "reasons": list(view.reasons),
        "reason": view.reason,
        "estimate": view.estimate,
        "max_rows": view.max_rows,
        "state": str(view.state),
        "state_reason": view.state_reason,
        "final": view.final,
        "source": view.source,
        "session_id": str(view.session_id) if view.session_id else None,
        "approvals": view.approvals,
        "approvals_required": view.approvals_required,
        "approver_groups": list(view.approver_groups),
        "decisions": [
            {
                "approver": d.approver,
                "verdict": d.verdict,
                "via": d.via,
                "reason": d.reason,
                "decided_at": d.decided_at.isoformat(),
            }
            for d in view.decisions
        ],
        "created_at": view.created_at.isoformat(),
        "expires_at": view.expires_at.isoformat(),
        "outcome": outcome_json(view.outcome) if view.outcome else None,
        "url": view.url,
    }


def may_see(directory: Directory, user: str, view: RequestView) -> bool:
    """The requester and the members of the request's approver groups may see it."""
    return user == view.requester or bool(directory.groups_of(user) & set(view.approver_groups))


async def awaiting(gateway: Gateway, user: str) -> list[RequestView]:
    return await decisions.awaiting(gateway.approvals, user)


async def mine(gateway: Gateway, user: str) -> list[RequestView]:
    store = gateway.approvals.store
    return await store.views(await store.list(requester=user))


class RequestsApi:
    """The handlers, bound to one gateway; :meth:`routes` mounts them."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/requests", bearer_guarded(self.gateway, self.create)),
            web.get("/api/requests", bearer_guarded(self.gateway, self.index)),
            web.get(r"/api/requests/{id:\d+}", bearer_guarded(self.gateway, self.show)),
            web.post(
                r"/api/requests/{id:\d+}/decisions", bearer_guarded(self.gateway, self.decide)
            ),
        ]

    async def create(self, request: web.Request, who: Principal) -> web.Response:
        body = await _json_body(request)
        resource, sql, reason = body.get("resource"), body.get("sql"), body.get("reason")
        if not isinstance(resource, str) or not isinstance(sql, str) or not sql.strip():
            return error(400, "bad_request", "resource and sql must be non-empty strings")
        if reason is not None and not isinstance(reason, str):
            return error(400, "bad_request", "reason must be a string")
        try:
            asked = await self.gateway.approvals.ask(
                resource_name=resource, identity=who.email, sql=sql, source=_channel(request),
                reason=reason or None, principal=who,
            )  # fmt: skip
        except DecisionRefused as exc:
            return error(REFUSAL_STATUS.get(exc.code, 403), exc.code, str(exc))
        if asked.request is None:
            assert asked.outcome is not None
            outcome = shown_outcome(self.config, resource, asked.outcome)
            return web.json_response({"action": "allow", "outcome": outcome_json(outcome)})
        return web.json_response(
            {
                "action": "review",
                "request": request_json(self.config, asked.request),
                "posted_to": self.gateway.approvals.where(asked.request),
            },
            status=202,
        )

    async def index(self, request: web.Request, who: Principal) -> web.Response:
        pending = request.query.get("pending") in ("1", "true", "yes")
        views = await (awaiting if pending else mine)(self.gateway, who.email)
        return web.json_response({"requests": [request_json(self.config, v) for v in views]})

    async def show(self, request: web.Request, who: Principal) -> web.Response:
        view = await self.gateway.approvals.store.view(int(request.match_info["id"]))
        if view is None or not may_see(self.gateway.directory, who.email, view):
            return error(404, "not_found", "no such request")
        return web.json_response(request_json(self.config, view))

    async def decide(self, request: web.Request, who: Principal) -> web.Response:
        if who.actor is not None:
            return error(403, "agent_cannot_decide", f"{who} cannot approve or reject requests")
        body = await _json_body(request)
        verdict, reason, max_rows = body.get("verdict"), body.get("reason"), body.get("max_rows")
        if verdict not in ("approve", "reject"):
            return error(400, "bad_request", 'verdict must be "approve" or "reject"')
        if reason is not None and not isinstance(reason, str):
            return error(400, "bad_request", "reason must be a string")
        if max_rows is not None and (
            isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1
        ):
            return error(400, "bad_request", "max_rows must be a positive integer")
        try:
            view = await self.gateway.approvals.decide(
                int(request.match_info["id"]), who.email, verdict, via=_channel(request),
                reason=reason or None, max_rows=max_rows,
            )  # fmt: skip
        except DecisionRefused as exc:
            return error(REFUSAL_STATUS.get(exc.code, 403), exc.code, str(exc))
        return web.json_response(request_json(self.config, view))


def _channel(request: web.Request) -> str:
    return "cli" if request.headers.get("User-Agent", "").startswith(CLI_AGENT + "/") else "api"


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error": "the body must be a JSON object", "code": "bad_request"}',
            content_type="application/json",
        )
    return body
