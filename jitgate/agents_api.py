"""Who am I, signing out, and handing access to agents: the REST calls behind
``jitgate whoami``, ``jitgate logout`` and ``jitgate agent grant|revoke``.

Every call needs ``Authorization: Bearer <access token>``; errors are ``{"error", "code"}``
as in :mod:`jitgate.api`.

``GET /api/whoami`` → ``{"email", "agent", "groups": [str], "resources": [str] | null,
    "classes": [str] | null}``: the token's person, the agent acting with it (or null) and
    what its delegation narrows.
``POST /api/logout`` → ``{"revoked": n}``: the presented token ends, with every agent's
    token minted from it (their open sessions end within seconds).
``POST /api/agents`` ``{"name", "resources"?: [str], "classes"?: [str], "ttl"?: "8h"}`` →
    ``201 {"token", "subject", "act": {"sub"}, "resources", "classes", "expires_at"}``:
    a token for agent ``name`` acting for the caller (:mod:`identity.delegations`); never
    longer-lived than the caller's own token. Refused with 403 ``access_denied`` for an
    agent's token (an agent cannot delegate) and 400 ``invalid_request``,
    ``invalid_target`` (a resource the caller has no access to), ``invalid_scope``.
``DELETE /api/agents/{name}`` → ``{"revoked": n, "cancelled": [request id]}``: every live
    token of that agent acting for the caller ends, and its pending requests are
    cancelled; 404 ``not_found`` when there was none.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from identity import Principal
from identity.delegations import delegation, grant, revoke
from jitgate.api import bearer_guarded, error
from jitgate.config import parse_duration
from jitgate.errors import ConfigError, GrantRefused
from jitgate.gateway import Gateway
from jitgate.webauth import bearer_token
from store.tokens import revoke_tokens

DEFAULT_AGENT_TTL = "8h"


class AgentsApi:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/whoami", bearer_guarded(self.gateway, self.whoami)),
            web.post("/api/logout", bearer_guarded(self.gateway, self.logout)),
            web.post("/api/agents", bearer_guarded(self.gateway, self.grant)),
            web.delete("/api/agents/{name}", bearer_guarded(self.gateway, self.revoke)),
        ]

    async def whoami(self, _request: web.Request, who: Principal) -> web.Response:
        return web.json_response({
            "email": who.email,
            "agent": who.actor,
            "groups": sorted(self.gateway.directory.groups_of(who.email)),
            "resources": None if who.resources is None else sorted(who.resources),
            "classes": None if who.classes is None else sorted(who.classes),
        })  # fmt: skip

    async def logout(self, request: web.Request, _who: Principal) -> web.Response:
        token = bearer_token(request)
        assert token is not None
        return web.json_response({"revoked": await revoke_tokens(self.gateway.pool, token=token)})

    async def grant(self, request: web.Request, who: Principal) -> web.Response:
        body = await _json_object(request)
        name, resources, classes = body.get("name"), body.get("resources"), body.get("classes")
        if not isinstance(name, str):
            return error(400, "invalid_request", "name must be the agent's name")
        for key, value in (("resources", resources), ("classes", classes)):
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                return error(400, "invalid_request", f"{key} must be a list of names")
        try:
            ttl = parse_duration(body.get("ttl", DEFAULT_AGENT_TTL), "ttl")
            wanted = delegation(
                self.gateway.config, self.gateway.directory, who, name, resources, classes, ttl
            )
        except ConfigError as exc:
            return error(400, "invalid_request", str(exc))
        except GrantRefused as exc:
            return error(403 if exc.error == "access_denied" else 400, exc.error, str(exc))
        token, record = await grant(self.gateway.pool, who, wanted)
        return web.json_response(
            {
                "token": token,
                "subject": who.email,
                "act": {"sub": wanted.agent},
                "resources": None if record.resources is None else sorted(record.resources),
                "classes": None if record.classes is None else sorted(record.classes),
                "expires_at": record.expires_at.isoformat(),
            },
            status=201,
        )

    async def revoke(self, request: web.Request, who: Principal) -> web.Response:
        if who.actor is not None:
            return error(403, "access_denied", "an agent cannot revoke delegations")
        name = request.match_info["name"]
        count, pending = await revoke(self.gateway.pool, who, name)
        cancelled = []
        for request_id in pending:
            reason = f"{who.email} revoked agent {name}'s access"
            if await self.gateway.approvals.cancel(request_id, reason) is not None:
                cancelled.append(request_id)
        if not count and not cancelled:
            return error(404, "not_found", f"agent {name} has no live delegation from {who.email}")
        return web.json_response({"revoked": count, "cancelled": cancelled})


async def _json_object(request: web.Request) -> dict[str, Any]:
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
