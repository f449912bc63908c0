"""The OpenID Connect relying party: discovery, keys, the authorization request with PKCE,
the code exchange, and the ID token's checks (:mod:`identity.id_tokens`).

Everything is read from the issuer's discovery document
(``<issuer>/.well-known/openid-configuration``), fetched at the first sign-in and kept;
the document must name the configured issuer exactly. The IdP's keys (JWKS) are fetched
with it and again when an ID token names a key id not seen yet, so a key rotation at the
IdP needs nothing from us; a key id still unknown after a fresh fetch is not looked up
again for :data:`UNKNOWN_KID_BACKOFF` seconds.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from identity.id_tokens import (
    ASYMMETRIC,
    SignedIn,
    token_header,
    verified_claims,
    verify_id_token,
)
from jitgate.config import OidcSettings
from jitgate.errors import IdentityProviderError, SignInRefused

UNKNOWN_KID_BACKOFF = 60.0
_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: frozenset[str]
    basic_auth: bool


class OidcClient:
    """One IdP, as ``oidc`` configures it; ``redirect_uri`` is ``public_url`` +
    ``/login/callback``."""

    def __init__(self, settings: OidcSettings, public_url: str) -> None:
        self.settings = settings
        self.redirect_uri = public_url + settings.redirect_path
        self._http: aiohttp.ClientSession | None = None
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._unknown_kids: dict[str, float] = {}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def authorization_url(self, state: str, nonce: str, code_verifier: str) -> str:
        metadata = await self.metadata()
        query = urlencode({
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + query

    async def sign_in(self, code: str, code_verifier: str, nonce: str) -> SignedIn:
        """Trade the authorization code for tokens and check the ID token."""
        return await self.verify(await self._exchange(code, code_verifier), nonce)

    async def verify(self, id_token: str, nonce: str | None) -> SignedIn:
        """Check an ID token the IdP issued (signature, issuer, audience, lifetime, and
        ``nonce`` when one is expected); return who it names."""
        algorithm, keys = await self._verifying(id_token)
        return verify_id_token(id_token, keys, self.settings, algorithm, nonce)

    async def claims_of(self, token: str) -> dict[str, Any]:
        """The claims of any JWT the IdP signed for us (an agent's own token, say),
        checked as an ID token's are but for the person's e-mail and nonce."""
        algorithm, keys = await self._verifying(token)
        return verified_claims(token, keys, self.settings, algorithm)

    async def _verifying(self, id_token: str) -> tuple[str, KeySet]:
        """The algorithm and keys to check ``id_token`` with; refused for an algorithm the
        IdP does not publish or a key it does not."""
        header = token_header(id_token)
        algorithm = header.get("alg")
        metadata = await self.metadata()
        if not isinstance(algorithm, str) or algorithm not in metadata.algorithms:
            raise SignInRefused(
                f"the ID token's signature algorithm {algorithm!r} is not accepted", attack=True
            )
        kid = header.get("kid")
        return algorithm, await self._keys_for(kid if isinstance(kid, str) else None)

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url)
            if document.get("issuer") != self.settings.issuer:
                raise IdentityProviderError(
                    f"the IdP's discovery document names issuer {document.get('issuer')!r},"
                    f" not oidc.issuer {self.settings.issuer!r}"
                )
            try:
                offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
                methods = document.get("token_endpoint_auth_methods_supported")
                self._metadata = ProviderMetadata(
                    authorization_endpoint=str(document["authorization_endpoint"]),
                    token_endpoint=str(document["token_endpoint"]),
                    jwks_uri=str(document["jwks_uri"]),
                    algorithms=frozenset(offered) & ASYMMETRIC,
                    basic_auth=not methods or "client_secret_basic" in methods,
                )
            except (KeyError, TypeError) as exc:
                raise IdentityProviderError(f"the IdP's discovery document lacks {exc}") from exc
        return self._metadata

    async def _keys_for(self, kid: str | None) -> KeySet:
        known = self._keys is not None and (kid is None or kid in _kids(self._keys))
        blocked = kid is not None and time.monotonic() < self._unknown_kids.get(kid, 0.0)
        if self._keys is None or (not known and not blocked):
            self._keys = await self._fetch_keys()
        assert self._keys is not None
        if kid is not None and kid not in _kids(self._keys):
            self._unknown_kids[kid] = time.monotonic() + UNKNOWN_KID_BACKOFF
            raise SignInRefused(
                "the ID token is signed with a key the IdP does not publish", attack=True
            )
        if kid is None and len(self._keys.keys) != 1:
            raise SignInRefused("the ID token names no key and the IdP has several")
        return self._keys

    async def _fetch_keys(self) -> KeySet:
        document = await self._get_json((await self.metadata()).jwks_uri)
        try:
            return KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise IdentityProviderError(f"the IdP's keys cannot be read: {exc}") from exc

    async def _exchange(self, code: str, code_verifier: str) -> str:
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {}
        secret = self.settings.client_secret
        if secret is not None and metadata.basic_auth:
            # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
            pair = f"{quote(self.settings.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.settings.client_id
            if secret is not None:
                form["client_secret"] = secret
        answer = await self._request("POST", metadata.token_endpoint, data=form, headers=headers)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused(f"the IdP refused the code: {answer.get('error', 'no ID token')}")
        return id_token

    async def _get_json(self, url: str) -> dict[str, Any]:
        return await self._request("GET", url)

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)
        try:
            async with self._http.request(method, url, **kwargs) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise IdentityProviderError(f"the IdP at {url} cannot be reached: {exc}") from exc
        if not isinstance(body, dict):
            raise IdentityProviderError(f"the IdP at {url} answered {response.status}")
        if response.status >= 500 or (response.status >= 300 and "error" not in body):
            raise IdentityProviderError(f"the IdP at {url} answered {response.status}")
        return body


def _kids(keys: KeySet) -> set[str]:
    return {key.kid for key in keys.keys if key.kid is not None}
