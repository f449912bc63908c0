"""A small OAuth authorization server that answers RFC 8693 token exchanges as a governed
MCP server's would, on a free loopback port in a thread.

``POST /token`` checks what a real one checks: the client by ``client_secret_basic``, the
grant type, the token types asked for, the subject (and actor) JWTs — signed HS256 with
the client's secret, issued by the gateway, for the configured audience and not expired
— and the audience and scope asked for. It then issues an opaque Bearer token for that
person (and agent), kept in ``issued`` (token -> (subject, actor)); every grant it was
sent is recorded in ``grants``. Subjects in ``refuse`` are answered ``access_denied``;
``lifetimes`` sets ``expires_in`` per subject (default an hour).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class FakeTokenServer:
    def __init__(self, client_id: str, client_secret: str, issuer: str, audience: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.issuer, self.audience = issuer, audience
        self.grants: list[dict[str, Any]] = []
        self.issued: dict[str, tuple[str, str | None]] = {}
        self.refuse: set[str] = set()
        self.lifetimes: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return int(self.runner.addresses[0][1])

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = {key: str(value) for key, value in form.items()}
        grant["authorization"] = request.headers.get("Authorization", "")
        self.grants.append(grant)
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if grant["authorization"] != f"Basic {expected}":
            return _refused(401, "invalid_client", "client authentication failed")
        if grant.get("grant_type") != GRANT_TYPE:
            return _refused(400, "unsupported_grant_type", grant.get("grant_type", ""))
        if grant.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            return _refused(400, "invalid_request", "requested_token_type")
        if grant.get("audience") != self.audience or grant.get("scope") != "tickets:write":
            return _refused(400, "invalid_target", "audience or scope")
        try:
            subject = self._subject_of(grant, "subject")
            actor = self._subject_of(grant, "actor") if "actor_token" in grant else None
        except (JoseError, ValueError) as exc:
            return _refused(400, "invalid_grant", f"bad assertion: {exc}")
        grant["subject"], grant["actor"] = subject, actor
        if subject in self.refuse:
            return _refused(400, "access_denied", f"{subject} may not use tickets")
        token = f"tickets-{secrets.token_urlsafe(12)}"
        self.issued[token] = (subject, actor)
        return web.json_response({
            "access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer", "expires_in": self.lifetimes.get(subject, 3600),
        })  # fmt: skip

    def _subject_of(self, grant: dict[str, Any], role: str) -> str:
        if grant.get(f"{role}_token_type") != JWT_TYPE:
            raise ValueError(f"{role}_token_type is not a JWT")
        token = jwt.decode(grant[f"{role}_token"], OctKey.import_key(self.client_secret))
        claims = token.claims
        if token.header.get("alg") != "HS256" or claims.get("iss") != self.issuer:
            raise ValueError("not the gateway's")
        if claims.get("aud") != self.audience or not claims.get("jti"):
            raise ValueError("not for this audience")
        if not claims.get("iat", 0) <= time.time() < claims.get("exp", 0):
            raise ValueError("expired")
        return str(claims["sub"])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _refused(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
