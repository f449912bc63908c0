"""The gateway's HTTP listener: health, metrics, the REST API (:mod:`jitgate.api`) and the
web inbox and session replay (:mod:`jitgate.pages`), whoami, logout and agents'
delegations (:mod:`jitgate.agents_api`), the token endpoint with ``oidc``
(:mod:`jitgate.oauth`), the MCP server
(:mod:`mcp_gateway.endpoint`) and the governing proxy for other MCP servers
(:mod:`mcp_gateway.relay`); chat adapters mount here too (``/slack/events``,
``/api/messages``)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from jitgate.agents_api import AgentsApi
from jitgate.api import RequestsApi
from jitgate.gateway import Gateway
from jitgate.oauth import TokenEndpoint
from jitgate.pages import Pages
from mcp_gateway.endpoint import McpEndpoint
from mcp_gateway.relay import McpRelay

GATEWAY = web.AppKey("gateway", Gateway)


def build_http_app(gateway: Gateway) -> web.Application:
    app = web.Application()
    app[GATEWAY] = gateway
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.add_routes(RequestsApi(gateway).routes())
    app.add_routes(AgentsApi(gateway).routes())
    if gateway.oidc is not None:
        app.add_routes(TokenEndpoint(gateway).routes())
    app.add_routes(Pages(gateway).routes())
    app.add_routes(McpEndpoint(gateway).routes())
    relay = McpRelay(gateway)
    app.add_routes(relay.routes())
    app.on_startup.append(relay.open)
    app.on_cleanup.append(relay.close)
    for chat in gateway.chats:
        app.add_routes(chat.routes())
    return app


async def healthz(request: web.Request) -> web.Response:
    """200 when the store answers and the Postgres listener is up; 503 naming what is not."""
    gateway = request.app[GATEWAY]
    checks = {
        "store": await gateway.store_reachable(),
        "postgres_listener": gateway.proxy.listening,
    }
    healthy = all(checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    gateway.metrics.audit_pending.set(gateway.recorder.pending)
    gateway.metrics.audit_available.set(1 if gateway.recorder.available else 0)
    return web.Response(
        body=gateway.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
