"""OAuth 2.0 Token Exchange (RFC 8693): the IdP's ID token in, a jitgate access token out.

``jitgate login`` trades the ID token its sign-in got for the person's own gateway token;
an agent platform trades the person's ID token, with the agent's own token as
``actor_token``, for an agent's token acting for them (:mod:`identity.delegations`).

The request (``application/x-www-form-urlencoded``):

- ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``;
- ``subject_token``: an ID token of the configured IdP, checked as the web sign-in checks
  one (:mod:`identity.id_tokens`; its audience may also be ``oidc.cli_client_id``) but for
  the nonce; ``subject_token_type``: ``…:token-type:id_token`` (or ``…:jwt``);
- ``actor_token`` (optional), ``actor_token_type`` (``…:jwt`` or ``…:id_token``): a JWT the
  same IdP signed for one of our client ids, naming the agent by ``client_id``, ``azp`` or
  ``sub``; it is recorded as ``act: {"sub": <name>, "iss": <issuer>}``;
- with an actor only, ``resource`` (repeatable: jitgate resource names) and ``scope``
  (statement classes, space-separated) narrow the agent's token;
- ``requested_token_type``, when sent, must be ``…:token-type:access_token``.

The groups the ID token names are recorded as a web sign-in records them, so a group
removed at the IdP is gone from this person at once. The answer (§2.2.1) is
``{"access_token", "issued_token_type", "token_type": "Bearer", "expires_in"}`` plus
``"scope"`` when narrowed and, beside them, ``"subject"`` and ``"act"``. Refusals raise
:class:`~jitgate.errors.GrantRefused` with the §2.2.2 / RFC 6749 §5.2 error code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from identity.delegations import delegation, grant
from identity.directory import Directory, Principal
from identity.idp_groups import IdpGroups, policy_groups
from identity.oidc import OidcClient
from jitgate.config import Config, OidcSettings
from jitgate.errors import GrantRefused, SignInRefused, StoreUnavailable
from store.tokens import TokenRecord, mint_token

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
_JWT_TYPES = (ID_TOKEN, JWT)
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    subject_token: str
    actor_token: str | None
    resources: tuple[str, ...] | None
    classes: tuple[str, ...] | None


def parse_exchange(form: Mapping[str, Sequence[str]]) -> ExchangeRequest:
    """The request in ``form`` (each parameter's values, in order), or GrantRefused."""

    def one(name: str) -> str | None:
        values = form.get(name, ())
        if len(values) > 1:
            raise GrantRefused("invalid_request", f"{name} is sent more than once")
        return values[0] if values else None

    grant_type = one("grant_type")
    if grant_type is None:
        raise GrantRefused("invalid_request", "grant_type is missing")
    if grant_type != GRANT_TYPE:
        raise GrantRefused(
            "unsupported_grant_type",
            f"grant_type {grant_type[:100]!r} is not supported; use {GRANT_TYPE}",
        )
    subject, subject_type = one("subject_token"), one("subject_token_type")
    if not subject or not subject_type:
        raise GrantRefused("invalid_request", "subject_token and subject_token_type are required")
    if subject_type not in _JWT_TYPES:
        raise GrantRefused(
            "invalid_request", f"subject_token_type must be {ID_TOKEN} (the IdP's ID token)"
        )
    requested = one("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN:
        raise GrantRefused("invalid_request", f"requested_token_type must be {ACCESS_TOKEN}")
    actor, actor_type = one("actor_token"), one("actor_token_type")
    if (actor is None) != (actor_type is None):
        raise GrantRefused("invalid_request", "actor_token and actor_token_type go together")
    if actor_type is not None and actor_type not in _JWT_TYPES:
        raise GrantRefused("invalid_request", f"actor_token_type must be {JWT}")
    resources = tuple(form.get("resource", ())) or None
    scope = one("scope")
    classes = tuple(scope.split()) if scope is not None else None
    if actor is None and (resources is not None or classes is not None):
        raise GrantRefused(
            "invalid_request",
            "resource and scope narrow an agent's token: send the agent's actor_token too",
        )
    return ExchangeRequest(subject, actor, resources, classes)


class TokenExchange:
    def __init__(
        self,
        config: Config,
        oidc: OidcClient,
        idp_groups: IdpGroups,
        directory: Directory,
        pool: asyncpg.Pool,
    ) -> None:
        assert config.oidc is not None
        self.config = config
        self.settings: OidcSettings = config.oidc
        self.oidc = oidc
        self.idp_groups = idp_groups
        self.directory = directory
        self.pool = pool

    async def exchange(self, asked: ExchangeRequest) -> dict[str, Any]:
        """Issue the token ``asked`` for; the RFC 8693 §2.2.1 answer. Raises GrantRefused
        (chained to the :class:`SignInRefused` when a token failed a check),
        IdentityProviderError and StoreUnavailable."""
        try:
            signed = await self.oidc.verify(asked.subject_token, None)
        except SignInRefused as exc:
            raise GrantRefused("invalid_grant", f"subject_token: {exc.reason}") from exc
        groups = policy_groups(signed.idp_groups, self.settings.group_map, self.config.groups)
        await self.idp_groups.remember(
            signed.email, signed.subject, groups, self.settings.session_ttl
        )
        if not self.directory.groups_of(signed.email):
            raise GrantRefused("invalid_grant", f"{signed.email} is in no group of jitgate")
        human = Principal(signed.email)
        answer: dict[str, Any] = {"subject": signed.email}
        if asked.actor_token is None:
            token, record = await self._mint_own(signed.email)
        else:
            agent = await self._actor_name(asked.actor_token)
            wanted = delegation(
                self.config, self.directory, human, agent, asked.resources, asked.classes,
                self.settings.token_ttl,
            )  # fmt: skip
            token, record = await grant(self.pool, human, wanted, act_issuer=self.settings.issuer)
            answer["act"] = {"sub": agent, "iss": self.settings.issuer}
            if wanted.classes is not None:
                answer["scope"] = " ".join(sorted(wanted.classes))
        expires_in = int((record.expires_at - datetime.now(UTC)).total_seconds())
        return {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": max(expires_in, 0),
            **answer,
        }

    async def _mint_own(self, email: str) -> tuple[str, TokenRecord]:
        try:
            return await mint_token(self.pool, email, self.settings.token_ttl)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the token: {exc}") from exc

    async def _actor_name(self, actor_token: str) -> str:
        try:
            claims = await self.oidc.claims_of(actor_token)
        except SignInRefused as exc:
            raise GrantRefused("invalid_grant", f"actor_token: {exc.reason}") from exc
        for claim in ("client_id", "azp", "sub"):
            name = claims.get(claim)
            if isinstance(name, str) and name:
                return name
        raise GrantRefused("invalid_grant", "actor_token names no agent (client_id, azp, sub)")
