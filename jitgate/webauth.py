"""Who is calling the HTTP listener, and whether a state-changing POST may be trusted.

- The REST API takes only ``Authorization: Bearer <access token>``: the same ``jg_`` tokens
  as the Postgres password, looked up by SHA-256 as the proxy does; revoked or expired
  tokens are refused. Browsers never attach that header to a cross-site request, so the
  API needs no CSRF check.
- Pages outside demo mode: the user pastes a token at ``/login``; the cookie
  :data:`TOKEN_COOKIE` holds it (HttpOnly, SameSite=Strict, Secure when ``public_url`` is
  https) and is checked against the store on every request, so revoking the token ends
  the web session too.
- Pages in demo mode (``http.demo: true``): no tokens; the user picks one of the
  configuration's users and :data:`USER_COOKIE` names them. Never enable it in production.

Every POST from a page must pass :func:`same_origin`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from jitgate.config import Config
from jitgate.errors import StoreUnavailable
from store.tokens import TOKEN_PREFIX, token_hash

TOKEN_COOKIE = "jitgate_token"
USER_COOKIE = "jitgate_user"
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def identity_of_token(pool: asyncpg.Pool, token: str) -> str | None:
    """The email a live token belongs to, or None. Raises StoreUnavailable."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    try:
        email = await pool.fetchval(
            "SELECT email FROM access_tokens WHERE token_sha256 = $1"
            " AND revoked_at IS NULL AND expires_at > now()",
            token_hash(token),
            timeout=5,
        )
    except STORE_ERRORS as exc:
        raise StoreUnavailable(f"cannot check the token: {exc}") from exc
    return str(email) if email is not None else None


async def bearer_user(request: web.Request, pool: asyncpg.Pool) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return await identity_of_token(pool, token.strip())


def config_users(config: Config) -> list[str]:
    """Every user the configuration names, for the demo picker."""
    return sorted({member for members in config.groups.values() for member in members})


async def page_user(request: web.Request, config: Config, pool: asyncpg.Pool) -> str | None:
    """The signed-in user of a page request, or None."""
    if config.demo:
        user = request.cookies.get(USER_COOKIE, "").strip().lower()
        return user if user in config_users(config) else None
    token = request.cookies.get(TOKEN_COOKIE)
    return await identity_of_token(pool, token) if token else None


def set_login_cookie(response: web.StreamResponse, config: Config, value: str) -> None:
    response.set_cookie(
        USER_COOKIE if config.demo else TOKEN_COOKIE,
        value,
        httponly=True,
        samesite="Strict",
        secure=config.public_url.startswith("https:"),
        path="/",
    )


def clear_login_cookies(response: web.StreamResponse) -> None:
    response.del_cookie(USER_COOKIE, path="/")
    response.del_cookie(TOKEN_COOKIE, path="/")


def same_origin(request: web.Request, config: Config) -> bool:
    """True when the POST comes from one of our own pages: its ``Origin`` (or, failing that,
    ``Referer``) names the host it was sent to. A request with neither is refused.

    The Host itself must be ``public_url``'s host, an IP address or localhost, so a DNS
    rebinding page (whose Origin and Host are both the attacker's name) is refused too —
    that matters in demo mode, where no token stands in the way."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    public = urlsplit(config.public_url)
    return urlsplit(source).netloc in (request.host, public.netloc) and _trusted_host(
        request.host, public.hostname
    )


def _trusted_host(host: str, public_host: str | None) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name in ("localhost", public_host):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
