"""Who is calling the HTTP listener, and whether a state-changing POST may be trusted.

- The REST API takes only ``Authorization: Bearer <access token>``: the same ``jg_`` tokens
  as the Postgres password, looked up by SHA-256 as the proxy does; revoked or expired
  tokens are refused. Browsers never attach that header to a cross-site request, so the
  API needs no CSRF check.
- Pages outside demo mode: the user pastes a token at ``/login``; the cookie
  :data:`TOKEN_COOKIE` holds it (HttpOnly, SameSite=Strict, Secure when ``public_url`` is
  https) and is checked against the store on every request, so revoking the token ends
  the web session too.
- Pages with ``oidc`` configured: ``GET /login`` signs in with the IdP
  (:mod:`jitgate.signin`); the cookie :data:`~identity.web_sessions.SESSION_COOKIE` names
  a session in the store, which logout and expiry end. Tokens are not pasted then.
- Pages in demo mode (``http.demo: true``): no tokens; the user picks one of the
  configuration's users and :data:`USER_COOKIE` names them. Never enable it in production.

Every POST from a page must pass :func:`same_origin`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import asyncpg
from aiohttp import web

from identity import Directory, Principal
from identity.web_sessions import SESSION_COOKIE, WebSessions
from jitgate.config import Config

TOKEN_COOKIE = "jitgate_token"
USER_COOKIE = "jitgate_user"
_OFF_SITE = re.compile(r"[^\x21-\x7e]|\\")
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def bearer_user(request: web.Request, directory: Directory) -> str | None:
    principal = await bearer_principal(request, directory)
    return principal.email if principal is not None else None


async def bearer_principal(request: web.Request, directory: Directory) -> Principal | None:
    """Who the request's Bearer token speaks for (with the agent acting, if any), or None
    for a missing, unknown, revoked or expired token."""
    token = bearer_token(request)
    return await directory.principal_of_token(token) if token else None


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def token_user(directory: Directory, token: str) -> str | None:
    """The e-mail a pasted access token belongs to, or None."""
    principal = await directory.principal_of_token(token)
    return principal.email if principal is not None else None


async def page_user(
    request: web.Request, config: Config, directory: Directory, sessions: WebSessions
) -> str | None:
    """The signed-in user of a page request, or None. Raises :class:`SignInRefused` for an
    altered session cookie."""
    if config.demo:
        user = request.cookies.get(USER_COOKIE, "").strip().lower()
        return user if user in directory.configured_users() else None
    if config.oidc is not None:
        cookie = request.cookies.get(SESSION_COOKIE)
        return await sessions.user_of(cookie) if cookie else None
    token = request.cookies.get(TOKEN_COOKIE)
    return await token_user(directory, token) if token else None


def set_session_cookie(response: web.StreamResponse, config: Config, value: str) -> None:
    """The IdP session's cookie is SameSite=Lax, not Strict: it is set at the end of a
    navigation that began at the IdP, and browsers withhold Strict cookies from the
    redirect to ``/inbox`` that follows, which would send the user back to sign in. Every
    POST is still checked by :func:`same_origin`."""
    assert config.oidc is not None
    response.set_cookie(
        SESSION_COOKIE,
        value,
        httponly=True,
        samesite="Lax",
        secure=config.public_url.startswith("https:"),
        path="/",
        max_age=int(config.oidc.session_ttl),
    )


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
    response.del_cookie(SESSION_COOKIE, path="/")


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


def next_path(source: Mapping[str, object]) -> str:
    r"""Where to go after logging in: a path on this site, else ``/inbox``. Browsers drop
    tabs and newlines from a URL and read a backslash as a slash, so ``/\t/elsewhere`` and
    ``/\elsewhere`` mean ``//elsewhere``, another host: a target must start with one ``/``
    and hold printable ASCII only, without a backslash, both as given and percent-decoded
    (``/%2F%2Felsewhere``)."""
    target = str(source.get("next", ""))
    for text in (target, unquote(target)):
        if not text.startswith("/") or text.startswith("//") or _OFF_SITE.search(text):
            return "/inbox"
    return target
