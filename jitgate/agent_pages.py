"""The web console's side of delegating to agents: ``GET /agents`` lists the signed-in
person's live delegations with a form to grant one; ``POST /agents`` grants it and shows
the agent's token once; ``POST /agents/revoke`` ends every live delegation to that
agent (its open sessions end within seconds, its pending requests are cancelled); the
agent's name comes in the form, as names may hold a slash (``spiffe://corp/agents/etl``).

The rules are :mod:`identity.delegations`' (the same as ``jitgate agent grant``): an agent
gets at most what its person has, narrowed by resources, classes and lifetime. A
delegation made here is not tied to the browser's session: it lives until its lifetime
ends or it is revoked, and at most ``oidc.token_ttl`` (8 h without ``oidc``). The page's
POSTs are checked to come from the console itself, as every other form's are.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

from aiohttp import web

from identity import Principal
from identity.delegations import delegation, grant, revoke
from jitgate import templates as t
from jitgate.config import STATEMENT_CLASSES, parse_duration
from jitgate.errors import ConfigError, GrantRefused
from jitgate.gateway import Gateway

Html = Callable[[str, str, "str | None", int], web.Response]
_LIVE = (
    "SELECT act ->> 'sub' AS agent, resources, classes, expires_at FROM access_tokens"
    " WHERE email = $1 AND act IS NOT NULL AND revoked_at IS NULL AND expires_at > now()"
    " ORDER BY act ->> 'sub', expires_at"
)
_MOST = 8 * 3600.0


class AgentPages:
    def __init__(self, gateway: Gateway, html: Html) -> None:
        self.gateway = gateway
        self._html = html

    async def page(
        self, _request: web.Request, user: str, note: str = "", token: str = ""
    ) -> web.Response:
        rows = await self.gateway.pool.fetch(_LIVE, user, timeout=5)
        live = t.table(
            ["agent", "resources", "classes", "expires", ""],
            (
                [
                    t.esc(r["agent"]),
                    t.esc(", ".join(r["resources"] or ["all yours"])),
                    t.esc(", ".join(r["classes"] or ["all yours"])),
                    t.when(r["expires_at"]),
                    '<form method="post" action="/agents/revoke">'
                    f'<input type="hidden" name="name" value="{t.esc(r["agent"])}">'
                    '<button type="submit">Revoke</button></form>',
                ]
                for r in rows
            ),
        )
        resources = sorted(
            name
            for name, resource in self.gateway.config.resources.items()
            if self.gateway.directory.groups_of(user) & resource.access.keys()
        )
        shown = (
            "<p>The agent's token, shown once (the agent uses it as your Postgres password"
            f" and as a Bearer token):</p><pre>{t.esc(token)}</pre>"
            if token
            else ""
        )
        body = (
            t.message(note or None)
            + shown
            + "<h2>Agents acting for you</h2>"
            + live
            + "<h2>Delegate to an agent</h2>"
            + '<form method="post" action="/agents">'
            + '<label>Agent <input name="name" required></label> '
            + "".join(
                f'<label><input type="checkbox" name="resource" value="{t.esc(r)}">'
                f" {t.esc(r)}</label> "
                for r in resources
            )
            + "".join(
                f'<label><input type="checkbox" name="class" value="{c}"> {c}</label> '
                for c in STATEMENT_CLASSES
            )
            + '<label>for <input name="ttl" value="8h" size="5"></label> '
            + '<button type="submit">Delegate</button></form>'
            + "<p>No resource or class ticked: all you have.</p>"
        )
        return self._html("Agents", body, user, 200)

    async def grant(self, request: web.Request, user: str) -> web.Response:
        form = parse_qs(await request.text())
        name = (form.get("name") or [""])[0].strip()
        try:
            ttl = parse_duration((form.get("ttl") or ["8h"])[0], "ttl")
            most = self.gateway.config.oidc.token_ttl if self.gateway.config.oidc else _MOST
            if ttl > most:
                raise GrantRefused("invalid_request", f"at most {most / 3600:g} h from the console")
            wanted = delegation(
                self.gateway.config, self.gateway.directory, Principal(user), name,
                form.get("resource") or None, form.get("class") or None, ttl,
            )  # fmt: skip
        except (ConfigError, GrantRefused) as exc:
            response = await self.page(request, user, note=f"not delegated: {exc}")
            response.set_status(400)
            return response
        token, _ = await grant(self.gateway.pool, Principal(user), wanted)
        return await self.page(request, user, note=f"delegated to {name}", token=token)

    async def revoke(self, request: web.Request, user: str) -> web.Response:
        name = (parse_qs(await request.text()).get("name") or [""])[0]
        count, pending = await revoke(self.gateway.pool, Principal(user), name)
        for request_id in pending:
            await self.gateway.approvals.cancel(request_id, f"{user} revoked agent {name}'s access")
        note = f"{name}: {count} token(s) revoked, {len(pending)} pending request(s) cancelled"
        return await self.page(request, user, note=note)
