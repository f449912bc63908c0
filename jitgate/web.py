"""The gateway's HTTP listener: health and metrics (chat, inbox and replay mount here too)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from jitgate.gateway import Gateway

GATEWAY = web.AppKey("gateway", Gateway)


def build_http_app(gateway: Gateway) -> web.Application:
    app = web.Application()
    app[GATEWAY] = gateway
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
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
