"""Who may POST to ``/api/messages``: the Bot Framework channel, proved the way the Bot
Framework proves it; the parts both SDKs' validators leave to the bot.

Every request carries ``Authorization: Bearer JWT``. The token must be an RS256 JWS
signed by a key from the JWKS that ``teams.openid_metadata`` announces (Microsoft's by
default), whose ``endorsements`` (when the key lists any) include the activity's
``channelId`` (:meth:`ChannelKeys.signing_key`, handed to the SDK's validator, which
checks the signature, ``aud`` the bot's app id, ``exp`` and ``nbf`` within five minutes of
now); ``iss`` must be the metadata's issuer and the ``serviceurl`` claim the activity's own
``serviceUrl``: a token minted for one connector cannot send replies to another. With
``teams.tenant_id``, the activity must come from that tenant (:func:`check_claims`). Any
failure is :class:`Unauthenticated`, which the endpoint answers with 401.

Keys are fetched with aiohttp (never blocking the loop), cached for a day, and fetched
again, at most once a minute, when a token names a key id not seen yet (Microsoft rolls
its keys). A metadata endpoint that cannot be reached makes the request unauthenticated,
not an error.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bot.teams_hosting import TIMEOUT, Unauthenticated
from jitgate.config import TeamsSettings

KEYS_TTL = 24 * 3600.0
REFETCH_AFTER = 60.0


class ChannelKeys:
    """The Bot Framework's signing keys, from its OpenID metadata."""

    def __init__(self, settings: TeamsSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._lock = asyncio.Lock()
        self._issuer: str | None = None
        self._keys: list[dict[str, Any]] = []
        self._fetched_at = -KEYS_TTL

    async def get(self, kid: str | None) -> tuple[str, list[dict[str, Any]]]:
        """The issuer and the keys, fetched again when stale or when ``kid`` is new."""
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            known = any(key.get("kid") == kid for key in self._keys)
            if self._issuer is None or age > KEYS_TTL or (not known and age > REFETCH_AFTER):
                await self._fetch()
            assert self._issuer is not None
            return self._issuer, self._keys

    async def signing_key(self, kid: object, channel: str) -> tuple[str, dict[str, Any]]:
        """The issuer and the public JWK named ``kid``, when it is endorsed for
        ``channel`` (or lists no endorsements); otherwise :class:`Unauthenticated`."""
        if not isinstance(kid, str):
            raise Unauthenticated("the token names no signing key")
        issuer, keys = await self.get(kid)
        named = [key for key in keys if key.get("kid") == kid]
        if not named:
            raise Unauthenticated("the token's key is not one of the channel's")
        endorsed = [k for k in named if not k.get("endorsements") or channel in k["endorsements"]]
        if not endorsed:
            raise Unauthenticated(f"the signing key is not endorsed for channel {channel!r}")
        return issuer, endorsed[0]

    async def _fetch(self) -> None:
        try:
            metadata = await self._json(self._settings.openid_metadata)
            issuer, jwks_uri = metadata.get("issuer"), metadata.get("jwks_uri")
            if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                raise Unauthenticated("the OpenID metadata names no issuer or jwks_uri")
            keys = (await self._json(jwks_uri)).get("keys")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if self._issuer is not None:  # keep serving with the keys we have
                return
            raise Unauthenticated(f"the channel's signing keys cannot be read: {exc}") from exc
        if not isinstance(keys, list):
            raise Unauthenticated("the channel's JWKS holds no keys")
        self._issuer = issuer
        self._keys = [key for key in keys if isinstance(key, dict)]
        self._fetched_at = time.monotonic()

    async def _json(self, url: str) -> dict[str, Any]:
        async with self._session.get(url, timeout=TIMEOUT) as answer:
            answer.raise_for_status()
            data = await answer.json(content_type=None)
        if not isinstance(data, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return data


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header, or :class:`Unauthenticated`."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("no bearer token")
    return token


def check_claims(claims: dict[str, Any], issuer: str, activity: dict[str, Any],
                 settings: TeamsSettings) -> dict[str, Any]:  # fmt: skip
    """``claims``, verified by an SDK's validator (signature, audience, lifetime), checked
    for what the Bot Framework requires beyond: the metadata's issuer exactly, an expiry,
    the activity's ``serviceUrl`` (in claim ``serviceurl``, as the channel spells it), and
    ``teams.tenant_id``'s tenant."""
    if claims.get("iss") != issuer:
        raise Unauthenticated("the token's issuer is not the channel's")
    if not isinstance(claims.get("exp"), int | float):
        raise Unauthenticated("the token has no expiry")
    if claims.get("serviceurl") != activity.get("serviceUrl"):
        raise Unauthenticated("the token's serviceUrl is not the activity's")
    if settings.tenant_id and tenant_of(activity) != settings.tenant_id:
        raise Unauthenticated("the activity comes from another tenant")
    return claims


def tenant_of(activity: dict[str, Any]) -> str | None:
    """The Entra tenant an activity comes from, as Teams sends it."""
    data = activity.get("channelData")
    tenant = data.get("tenant") if isinstance(data, dict) else None
    if isinstance(tenant, dict) and isinstance(tenant.get("id"), str):
        return str(tenant["id"])
    conversation = activity.get("conversation")
    if isinstance(conversation, dict) and isinstance(conversation.get("tenantId"), str):
        return str(conversation["tenantId"])
    return None
