"""Per-person credentials for a governed server that does OAuth: a token of the caller's
own, obtained by OAuth 2.0 Token Exchange (RFC 8693) at the server's authorization server
and sent as the Bearer, never the client's own token.

For each caller (the person, and the agent acting for them) the gateway POSTs to
``auth.token_endpoint``, authenticated as ``client_id`` with ``client_secret``
(``client_secret_basic``)::

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    subject_token=<JWT: iss the gateway's public_url, sub the person's e-mail>
    subject_token_type=urn:ietf:params:oauth:token-type:jwt
    actor_token=<JWT: sub the agent's name>            (when an agent acts)
    actor_token_type=urn:ietf:params:oauth:token-type:jwt
    requested_token_type=urn:ietf:params:oauth:token-type:access_token
    audience=<auth.audience>  scope=<auth.scope>       (when configured)

The two JWTs are the gateway's word for who is calling: signed with HS256 under the
client secret (as RFC 7523's ``client_secret_jwt`` signs), with ``aud`` the audience (else
the token endpoint), a ``jti`` and one minute of life. The answer's ``access_token`` is
used until shortly before ``expires_in`` runs out (a tenth of its life, at most 30 s
early; one minute when the server names no lifetime). Concurrent calls of one caller
share one exchange. A refusal, an unreachable server or an answer without a token raises
:class:`~jitgate.errors.McpServerError` naming the authorization server and the error:
nothing is forwarded.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

import aiohttp
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from joserfc import jwt
from joserfc.jwk import OctKey

from identity import Principal
from jitgate.errors import McpServerError
from mcp_gateway.settings import McpServer

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ASSERTION_LIFETIME = 60
UNNAMED_LIFETIME = 60.0
MAX_EARLY = 30.0
_CACHE_LIMIT = 1024
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class _Issued:
    token: str
    renew_at: float


class DownstreamTokens:
    def __init__(self, server: McpServer, http: aiohttp.ClientSession, issuer: str) -> None:
        assert server.auth is not None
        self.server = server
        self.auth = server.auth
        self.http = http
        self.issuer = issuer
        self._key = OctKey.import_key(self.auth.client_secret)
        self._client = ClientAuth(self.auth.client_id, self.auth.client_secret)
        self._issued: dict[tuple[str, str | None], _Issued] = {}
        self._pending: dict[tuple[str, str | None], asyncio.Future[_Issued]] = {}

    async def token_for(self, caller: Principal) -> str:
        """The server's access token for ``caller``: cached, or exchanged now."""
        key = (caller.email, caller.actor)
        issued = self._issued.get(key)
        if issued is not None and time.monotonic() < issued.renew_at:
            return issued.token
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._exchange(caller))
            self._pending[key] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(key, None))
        issued = await asyncio.shield(pending)
        self._keep(key, issued)
        return issued.token

    def _keep(self, key: tuple[str, str | None], issued: _Issued) -> None:
        if len(self._issued) >= _CACHE_LIMIT:
            now = time.monotonic()
            self._issued = {k: v for k, v in self._issued.items() if v.renew_at > now}
        self._issued[key] = issued

    async def _exchange(self, caller: Principal) -> _Issued:
        auth, name = self.auth, self.server.name
        fields = {
            "subject_token": self._assertion(caller.email),
            "subject_token_type": JWT_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": auth.audience,
            "scope": auth.scope,
        }
        if caller.actor is not None:
            fields["actor_token"] = self._assertion(caller.actor)
            fields["actor_token_type"] = JWT_TYPE
        body = prepare_token_request(GRANT_TYPE, **{k: v for k, v in fields.items() if v})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": _JSON}
        url, headers, body = self._client.prepare("POST", auth.token_endpoint, headers, body)
        where = f"{name}'s authorization server ({auth.token_endpoint})"
        try:
            async with asyncio.timeout(self.server.timeout):
                async with self.http.post(url, data=body, headers=headers) as response:
                    answer = await response.json(content_type=None)
                    status = response.status
        except TimeoutError:
            raise McpServerError(f"{where} did not answer the token exchange") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise McpServerError(f"cannot exchange a token at {where}: {exc}") from exc
        if not isinstance(answer, dict):
            raise McpServerError(f"{where} answered the token exchange with no JSON object")
        if status != 200 or "error" in answer:
            error = str(answer.get("error", f"HTTP {status}"))[:100]
            reason = str(answer.get("error_description", ""))[:300]
            raise McpServerError(
                f"{where} refused the token exchange for {caller}: {error}"
                + (f" ({reason})" if reason else "")
            )
        return self._issued_from(answer, where)

    def _issued_from(self, answer: dict[str, object], where: str) -> _Issued:
        token, kind = answer.get("access_token"), answer.get("token_type")
        if not isinstance(token, str) or not token or not isinstance(kind, str):
            raise McpServerError(f"{where} answered the token exchange without an access token")
        if kind.lower() != "bearer":
            raise McpServerError(f"{where} issued a {kind[:40]!r} token, not a Bearer token")
        lifetime = answer.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime < 0:
            lifetime = UNNAMED_LIFETIME if lifetime is None else 0.0
        early = min(MAX_EARLY, float(lifetime) / 10)
        return _Issued(token, time.monotonic() + float(lifetime) - early)

    def _assertion(self, subject: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": subject,
            "aud": self.auth.audience or self.auth.token_endpoint,
            "iat": now, "exp": now + ASSERTION_LIFETIME, "jti": secrets.token_urlsafe(16),
        }  # fmt: skip
        return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, self._key)
