"""Web sign-in with the company's IdP: ``GET /login``, ``GET /login/callback``,
``POST /logout``, mounted instead of the token form when ``oidc`` is configured.

``GET /login?next=/requests/7`` records a sign-in under way (state, nonce, PKCE
verifier; :mod:`identity.web_sessions`), binds it to the browser with a cookie and
redirects (302) to the IdP's authorization endpoint. The IdP sends the browser back to
``PUBLIC_URL/login/callback?code=…&state=…``; the code is traded for an ID token, which is
checked (:mod:`identity.id_tokens`), the person's IdP groups are recorded
(:mod:`identity.idp_groups`), and a session cookie is set with a 303 to ``next`` (an
on-site path only, else ``/inbox``). Someone in no group of jitgate is refused (403).

Every refusal is a page with the reason and a 4xx status (502 when the IdP cannot be
reached, 503 when the store cannot); one that only a forger or a replay explains also
raises a ``sign_in_refused`` alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from approvals.model import Alert
from identity.idp_groups import policy_groups
from identity.web_sessions import LOGIN_COOKIE, LOGIN_TTL, SESSION_COOKIE
from jitgate import templates as t
from jitgate.errors import IdentityProviderError, SignInRefused, StoreUnavailable
from jitgate.gateway import Gateway
from jitgate.webauth import clear_login_cookies, next_path, same_origin, set_session_cookie

log = logging.getLogger("jitgate.signin")

Render = Callable[[str, str, str | None, int], web.Response]
_IDP_TEXT_LIMIT = 200


class OidcSignIn:
    def __init__(self, gateway: Gateway, render: Render) -> None:
        assert gateway.oidc is not None and gateway.config.oidc is not None
        self.gateway = gateway
        self.oidc = gateway.oidc
        self.settings = gateway.config.oidc
        self.sessions = gateway.web_sessions
        self._render = render

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/login", self.start),
            web.get(self.settings.redirect_path, self.callback),
            web.post("/logout", self.logout),
        ]

    async def start(self, request: web.Request) -> web.StreamResponse:
        try:
            attempt = await self.sessions.begin_login(next_path(request.query))
            url = await self.oidc.authorization_url(
                attempt.state, attempt.nonce, attempt.code_verifier
            )
        except IdentityProviderError as exc:
            log.error("identity provider unavailable", extra={"error": str(exc)})
            return self._render("Sign-in unavailable", t.message(str(exc)), None, 502)
        except StoreUnavailable as exc:
            return self._render("Unavailable", t.message(str(exc)), None, 503)
        response = web.HTTPFound(url)
        # Lax: the browser must send it back on the IdP's redirect to the callback.
        response.set_cookie(
            LOGIN_COOKIE, attempt.state, httponly=True, samesite="Lax", path="/login",
            secure=self.gateway.config.public_url.startswith("https:"), max_age=int(LOGIN_TTL),
        )  # fmt: skip
        raise response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            if "error" in query:
                said = query.get("error_description") or query["error"]
                raise SignInRefused(f"the IdP refused the sign-in: {said[:_IDP_TEXT_LIMIT]}")
            code, state = query.get("code"), query.get("state")
            if not code or not state:
                raise SignInRefused("the IdP's answer has no code or no state")
            attempt = await self.sessions.finish_login(state, request.cookies.get(LOGIN_COOKIE))
            signed = await self.oidc.sign_in(code, attempt.code_verifier, attempt.nonce)
            groups = policy_groups(
                signed.idp_groups, self.settings.group_map, self.gateway.config.groups
            )
            assert self.gateway.idp_groups is not None
            await self.gateway.idp_groups.remember(
                signed.email, signed.subject, groups, self.settings.session_ttl
            )
            if not self.gateway.directory.groups_of(signed.email):
                log.warning("sign-in of someone in no group", extra={"identity": signed.email})
                body = t.message(f"{signed.email} is in no group of jitgate; ask an administrator")
                return self._render("No access", body, None, 403)
            cookie = await self.sessions.open(signed.email, self.settings.session_ttl)
        except SignInRefused as exc:
            return self.refused(request, exc)
        except IdentityProviderError as exc:
            log.error("identity provider unavailable", extra={"error": str(exc)})
            return self._render("Sign-in unavailable", t.message(str(exc)), None, 502)
        except StoreUnavailable as exc:
            return self._render("Unavailable", t.message(str(exc)), None, 503)
        log.info("signed in", extra={"identity": signed.email, "groups": sorted(groups)})
        response = web.HTTPSeeOther(attempt.next_path)
        set_session_cookie(response, self.gateway.config, cookie)
        response.del_cookie(LOGIN_COOKIE, path="/login")
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request, self.gateway.config):
            return self._render("Refused", t.message("cross-site request refused"), None, 403)
        cookie = request.cookies.get(SESSION_COOKIE)
        try:
            if cookie:
                await self.sessions.revoke(cookie)
        except SignInRefused:
            pass  # an altered cookie names no session; clearing it is all there is to do
        except StoreUnavailable as exc:
            return self._render("Unavailable", t.message(str(exc)), None, 503)
        body = t.message("You are signed out of jitgate.") + '<a href="/login">Sign in</a>'
        response = self._render("Signed out", body, None, 200)
        clear_login_cookies(response)
        return response

    def refused(self, request: web.Request, exc: SignInRefused) -> web.Response:
        """The page for a refused sign-in or session; an alert when it is an attack. The
        session cookie is cleared, so an altered one is not sent again."""
        log.warning("sign-in refused", extra={"reason": exc.reason, "peer": request.remote})
        if exc.attack:
            self.gateway.approvals.emit(
                Alert("sign_in_refused", f"web sign-in from {request.remote}: {exc.reason}")
            )
        body = t.message(exc.reason) + '<a href="/login">Sign in again</a>'
        response = self._render("Sign-in refused", body, None, 400)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response
