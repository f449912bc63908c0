"""A small OpenID Connect provider that speaks the real protocol: discovery, a JWKS of real
RSA keys, the authorization endpoint (code flow, PKCE S256 required), the token endpoint
(client_secret_basic or _post) and signed ID tokens with a groups claim; for the public
client ``jitgate login`` uses (``cli_client_id``, no secret), the device authorization
grant (RFC 8628: device and user codes, polling answered ``authorization_pending`` or
``slow_down``) and loopback redirects on any port (RFC 8252 §7.3).

The test approves or denies a device code as the person at the browser would
(:meth:`FakeIdp.approve_device`, :meth:`FakeIdp.deny_device`), and can ask for
``slow_down`` answers (``slow_downs``); every poll's time is kept in ``device_polls``.
``device_flow = False`` leaves the device endpoint out of discovery.

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
from urllib.parse import unquote, urlencode, urlsplit

from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Grant:
    redirect_uri: str
    nonce: str | None
    challenge: str
    email: str
    groups: list[str]
    client_id: str = ""


@dataclass
class DeviceGrant:
    client_id: str
    device_code: str
    expires_at: float
    user: tuple[str, list[str]] | None = None
    denied: bool = False


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
    cli_client_id: str = "jitgate-cli"
    device_flow: bool = True
    device_interval: int = 1
    device_ttl: float = 600.0
    slow_downs: int = 0
    device_polls: list[float] = field(default_factory=list)
    _devices: dict[str, DeviceGrant] = field(default_factory=dict)
    _grants: dict[str, Grant] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        self.keys.append(new_key("key-1"))
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_post("/device", self.device)
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

    def approve_device(self, user_code: str, email: str, groups: list[str]) -> None:
        """``email`` enters ``user_code`` at the verification page and approves."""
        self._devices[user_code].user = (email, groups)

    def deny_device(self, user_code: str) -> None:
        self._devices[user_code].denied = True

    def rotate(self) -> RSAKey:
        """Publish a new signing key and retire the old ones."""
        key = new_key(f"key-{len(self.keys) + 1}")
        self.keys = [key]
        return key

    async def discovery(self, _request: web.Request) -> web.Response:
        device = {"device_authorization_endpoint": f"{self.issuer}/device"}
        return web.json_response({
            **(device if self.device_flow else {}),
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

    async def device(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.cli_client_id:
            return web.json_response({"error": "invalid_client"}, status=401)
        if "openid" not in str(form.get("scope", "")).split():
            return web.json_response({"error": "invalid_scope"}, status=400)
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        grant = DeviceGrant(
            self.cli_client_id, secrets.token_urlsafe(24), time.monotonic() + self.device_ttl
        )
        self._devices[user_code] = grant
        return web.json_response({
            "device_code": grant.device_code,
            "user_code": user_code,
            "verification_uri": f"{self.issuer}/activate",
            "verification_uri_complete": f"{self.issuer}/activate?user_code={user_code}",
            "expires_in": int(self.device_ttl),
            "interval": self.device_interval,
        })  # fmt: skip

    def _device_token(self, form: dict[str, str]) -> web.Response:
        """RFC 8628 §3.5: the answer to one poll."""
        self.device_polls.append(time.monotonic())
        found = [
            (code, g) for code, g in self._devices.items()
            if g.device_code == form.get("device_code") and g.client_id == form.get("client_id")
        ]  # fmt: skip
        if not found:
            return web.json_response({"error": "invalid_grant"}, status=400)
        user_code, grant = found[0]
        if time.monotonic() > grant.expires_at:
            return web.json_response({"error": "expired_token"}, status=400)
        if grant.denied:
            del self._devices[user_code]
            return web.json_response({"error": "access_denied"}, status=400)
        if self.slow_downs:
            self.slow_downs -= 1
            return web.json_response({"error": "slow_down"}, status=400)
        if grant.user is None:
            return web.json_response({"error": "authorization_pending"}, status=400)
        del self._devices[user_code]
        done = Grant("", None, "", *grant.user, client_id=grant.client_id)
        return web.json_response({
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(done),
        })  # fmt: skip

    def _redirect_allowed(self, client_id: str | None, uri: str | None) -> bool:
        if client_id == self.client_id:
            return uri in self.redirect_uris
        # A native client's loopback redirect may use any port (RFC 8252 §7.3).
        parts = urlsplit(uri or "")
        return (
            client_id == self.cli_client_id
            and parts.scheme == "http"
            and parts.hostname == "127.0.0.1"
        )

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if not self._redirect_allowed(q.get("client_id"), q.get("redirect_uri")):
            return web.Response(status=400, text="unknown client or redirect_uri")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="code flow with PKCE S256 only")
        if "openid" not in q.get("scope", "").split() or not q.get("code_challenge"):
            return web.Response(status=400, text="scope openid and a code_challenge are required")
        if self.user is None:
            return web.Response(status=401, text="nobody is signed in at the IdP")
        code = secrets.token_urlsafe(24)
        self._grants[code] = Grant(
            q["redirect_uri"], q.get("nonce"), q["code_challenge"], *self.user,
            client_id=q["client_id"],
        )  # fmt: skip
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
        public = client_id == self.cli_client_id and secret is None
        if not public and (client_id != self.client_id or secret != self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        if public and form.get("grant_type") == DEVICE_GRANT:
            return self._device_token(form)
        grant = self._grants.pop(form.get("code", ""), None)
        if grant is not None and grant.client_id != client_id:
            return web.json_response({"error": "invalid_grant"}, status=400)
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
            "iss": self.issuer, "sub": f"sub-{grant.email}",
            "aud": grant.client_id or self.client_id, "iat": now, "exp": now + 300,
            "nonce": grant.nonce, "email": grant.email, "email_verified": True,
            "groups": grant.groups,
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
