"""The gateway's token endpoint and what ``jitgate login`` needs to sign in, mounted when
``oidc`` is configured.

``POST /oauth/token`` — RFC 8693 token exchange (:mod:`identity.token_exchange`): the
IdP's ID token in, a jitgate access token out. ``200`` with the §2.2.1 answer; ``400
{"error", "error_description"}`` per §2.2.2 and RFC 6749 §5.2 (``invalid_request``,
``invalid_grant``, ``unsupported_grant_type``, ``invalid_scope``, ``invalid_target``);
``502`` / ``503`` ``temporarily_unavailable`` when the IdP or the store cannot be asked.
Answers are never cached (``Cache-Control: no-store``). A subject or actor token that only
a forger explains raises a ``sign_in_refused`` alert.

``GET /api/login`` — no token needed: ``{"issuer", "client_id", "scopes", "token_endpoint",
"postgres": {"host", "port"}}``, the IdP and client ``jitgate login`` signs in with
(``oidc.cli_client_id``, else ``oidc.client_id``), where to trade its ID token, and where
psql connects.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from approvals.model import Alert
from identity.token_exchange import TokenExchange, parse_exchange
from jitgate.errors import GrantRefused, IdentityProviderError, SignInRefused, StoreUnavailable
from jitgate.gateway import Gateway

log = logging.getLogger("jitgate.oauth")

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_WILDCARDS = ("0.0.0.0", "::", "")


def oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=_NO_STORE
    )


class TokenEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        assert gateway.oidc is not None and gateway.idp_groups is not None
        assert gateway.config.oidc is not None
        self.gateway = gateway
        self.settings = gateway.config.oidc
        self.exchange = TokenExchange(
            gateway.config, gateway.oidc, gateway.idp_groups, gateway.directory, gateway.pool
        )

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/oauth/token", self.token), web.get("/api/login", self.login_info)]

    async def token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return oauth_error(
                400, "invalid_request", "send the parameters as application/x-www-form-urlencoded"
            )
        form = await request.post()
        values = {key: [str(v) for v in form.getall(key)] for key in set(form.keys())}
        try:
            answer = await self.exchange.exchange(parse_exchange(values))
        except GrantRefused as exc:
            self._alert_if_forged(request, exc)
            log.info("token exchange refused", extra={"reason": str(exc), "error": exc.error})
            return oauth_error(400, exc.error, str(exc))
        except IdentityProviderError as exc:
            return oauth_error(502, "temporarily_unavailable", str(exc))
        except StoreUnavailable as exc:
            return oauth_error(503, "temporarily_unavailable", str(exc))
        log.info(
            "token issued by exchange",
            extra={"identity": answer["subject"], "agent": answer.get("act", {}).get("sub")},
        )
        return web.json_response(answer, headers=_NO_STORE)

    def _alert_if_forged(self, request: web.Request, exc: GrantRefused) -> None:
        cause = exc.__cause__
        if isinstance(cause, SignInRefused) and cause.attack:
            self.gateway.approvals.emit(
                Alert("sign_in_refused", f"token exchange from {request.remote}: {exc}")
            )

    async def login_info(self, _request: web.Request) -> web.Response:
        listen = self.gateway.config.postgres.listen
        host = listen.host
        if host in _WILDCARDS:
            host = urlsplit(self.gateway.config.public_url).hostname or "127.0.0.1"
        return web.json_response({
            "issuer": self.settings.issuer,
            "client_id": self.settings.cli_client_id or self.settings.client_id,
            "scopes": list(self.settings.scopes),
            "token_endpoint": self.gateway.config.public_url + "/oauth/token",
            "postgres": {"host": host, "port": self.gateway.proxy.port},
        })  # fmt: skip
