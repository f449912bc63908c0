"""Checking an ID token (OpenID Connect Core §3.1.3.7) and reading who it names.

Only asymmetric signatures are accepted, from the algorithms the IdP publishes: ``none``
and the HMAC family (which would make the client secret a signing key) are refused before
any key is looked at. The claims checked: ``iss`` equals the configured issuer, ``aud``
holds one of our client ids (the console's, or ``oidc.cli_client_id``; ``azp`` names it
when there are several audiences), ``exp``, ``iat`` and ``nbf`` within ``oidc.clock_skew``,
and ``nonce`` equals the one this sign-in sent (when a sign-in sent one: a token traded at
``/oauth/token`` comes from a sign-in the gateway did not start). Each failure is a
:class:`~jitgate.errors.SignInRefused` whose ``attack`` says whether only a forger or a
replay explains it.
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from jitgate.config import OidcSettings
from jitgate.errors import SignInRefused

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """What a verified ID token says: the person, their IdP subject and IdP groups."""

    email: str
    subject: str
    idp_groups: tuple[str, ...]


def token_header(id_token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, unverified (to choose the key)."""
    try:
        segment = id_token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignInRefused("the ID token is not a JWT", attack=True) from exc
    if not isinstance(header, dict) or id_token.count(".") != 2:
        raise SignInRefused("the ID token is not a signed JWT", attack=True)
    return header


def verify_id_token(
    id_token: str, keys: KeySet, settings: OidcSettings, algorithm: str, nonce: str | None
) -> SignedIn:
    """Check ``id_token``'s signature with ``keys`` and its claims; return who it names."""
    claims = verified_claims(id_token, keys, settings, algorithm)
    if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInRefused(
            "the ID token's nonce is not this sign-in's (a replayed token?)", attack=True
        )
    return SignedIn(_email(claims, settings), str(claims["sub"]), _groups(claims, settings))


def verified_claims(
    id_token: str, keys: KeySet, settings: OidcSettings, algorithm: str
) -> dict[str, Any]:
    """The claims of a JWT the IdP signed for us: signature, ``iss``, ``sub``, lifetime
    and audience checked (what an ID token and an agent's token from the IdP share)."""
    try:
        claims = jwt.decode(id_token, keys, algorithms=[algorithm]).claims
    except BadSignatureError as exc:
        raise SignInRefused(
            "the ID token's signature does not verify with the IdP's keys", attack=True
        ) from exc
    except (JoseError, ValueError) as exc:
        raise SignInRefused(f"the ID token cannot be read: {exc}", attack=True) from exc
    registry = jwt.JWTClaimsRegistry(
        leeway=int(settings.clock_skew),
        iss={"essential": True, "value": settings.issuer},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise SignInRefused("the ID token has expired; sign in again") from exc
    except InvalidClaimError as exc:
        attack = exc.claim == "iss"
        raise SignInRefused(f"the ID token's {exc.claim} is not valid", attack=attack) from exc
    except MissingClaimError as exc:
        raise SignInRefused(f"the ID token lacks {exc.claim}", attack=True) from exc
    _check_audience(claims, settings.audiences)
    return dict(claims)


def _check_audience(claims: dict[str, Any], client_ids: frozenset[str]) -> None:
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not client_ids & set(map(str, audiences)):
        raise SignInRefused("the ID token was issued to another application", attack=True)
    if len(audiences) > 1 and claims.get("azp") not in client_ids:
        raise SignInRefused("the ID token's azp names another application", attack=True)


def _email(claims: dict[str, Any], settings: OidcSettings) -> str:
    email = claims.get(settings.email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise SignInRefused(f"the ID token has no e-mail in {settings.email_claim!r}")
    if claims.get("email_verified") is False:
        raise SignInRefused("the IdP has not verified this e-mail address")
    return email.strip().lower()


def _groups(claims: dict[str, Any], settings: OidcSettings) -> tuple[str, ...]:
    """The IdP groups at ``groups_claim``; none when the claim is absent (the IdP leaves it
    out for someone in no group). Entra ID replaces a long list with a pointer to Graph
    (``_claim_names``, "groups overage"): refused, since reading it would grant less than
    the person has and hide why."""
    path = settings.groups_claim
    if not path:
        return ()
    pointers = claims.get("_claim_names")
    overage = isinstance(pointers, dict) and path[0] in pointers
    if overage or (path[0] == "groups" and claims.get("hasgroups") is True):
        raise SignInRefused(
            "the IdP left the groups out of the ID token (too many groups: Entra ID's"
            " overage); ask an administrator to send only the groups assigned to jitgate"
        )
    value: Any = claims
    for segment in path:
        value = value.get(segment) if isinstance(value, dict) else None
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise SignInRefused(f"the ID token's {'.'.join(path)} is not a list of group names")
    return tuple(value)
