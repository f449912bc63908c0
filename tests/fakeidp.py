"""A small OpenID Connect provider that speaks the real protocol: discovery, a JWKS of real
RSA keys, the authorization endpoint (code flow, PKCE S256 required), the token endpoint
(client_secret_basic or _post) and signed ID tokens with a groups claim.

The test decides who is signed in at the IdP (:meth:`FakeIdp.sign_in_as`) and can make it
misbehave the way a forger or a broken IdP would: ``forge`` changes the next ID token's
claims (a value of None removes the claim), ``sign_with`` signs it with another key or
with ``alg: none``; :meth:`rotate` publishes a new key. Everything sent to the token
endpoint is recorded in ``token_requests``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


@dataclass
class Grant:
    redirect_uri: str
    nonce: str | None
    challenge: str
    email: str
    groups: list[str]


@dataclass
class FakeIdp:
    client_id: str = "jitgate-console"
    client_secret: str = "idp-client-secret"
    redirect_uris: set[str] = field(default_factory=set)
    keys: list[RSAKey] = field(default_factory=list)
    user: tuple[str, list[str]] | None = None
    forge: dict[str, Any] = field(default_factory=dict)
    sign_with: RSAKey | str | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issuer: str = ""
    _grants: dict[str, Grant] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        self.keys.append(new_key("key-1"))
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.issuer = f"http://127.0.0.1:{port}"
        return self.issuer

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def sign_in_as(self, email: str, groups: list[str]) -> None:
        self.user = (email, groups)

    def rotate(self) -> RSAKey:
        """Publish a new signing key and retire the old ones."""
        key = new_key(f"key-{len(self.keys) + 1}")
        self.keys = [key]
        return key

    async def discovery(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })  # fmt: skip

    async def jwks(self, _request: web.Request) -> web.Response:
        return web.json_response(KeySet(list(self.keys)).as_dict(private=False))

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id or q.get("redirect_uri") not in self.redirect_uris:
            return web.Response(status=400, text="unknown client or redirect_uri")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="code flow with PKCE S256 only")
        if "openid" not in q.get("scope", "").split() or not q.get("code_challenge"):
            return web.Response(status=400, text="scope openid and a code_challenge are required")
        if self.user is None:
            return web.Response(status=401, text="nobody is signed in at the IdP")
        code = secrets.token_urlsafe(24)
        self._grants[code] = Grant(
            q["redirect_uri"], q.get("nonce"), q["code_challenge"], *self.user
        )
        answer = {"code": code, "state": q.get("state", "")}
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode(answer)}")

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        authorization = request.headers.get("Authorization", "")
        self.token_requests.append({**form, "authorization": authorization})
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, basic = authorization.partition(" ")
        if scheme == "Basic":
            client_id, _, secret = base64.b64decode(basic).decode().partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        if client_id != self.client_id or secret != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self._grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "invalid_grant"}, status=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = form.get("code_verifier", "")
        if not verifier or create_s256_code_challenge(verifier) != grant.challenge:
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        return web.json_response({
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant),
        })  # fmt: skip

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": f"sub-{grant.email}", "aud": self.client_id,
            "iat": now, "exp": now + 300, "nonce": grant.nonce, "email": grant.email,
            "email_verified": True, "groups": grant.groups,
        }  # fmt: skip
        claims.update(self.forge)
        claims = {k: v for k, v in claims.items() if v is not None}
        self.forge = {}
        key, self.sign_with = self.sign_with or self.keys[-1], None
        if key == "none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        assert isinstance(key, RSAKey)
        return jwt.encode({"alg": "RS256", "kid": key.kid or ""}, claims, key)


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, {"kid": kid, "use": "sig", "alg": "RS256"})


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
