"""``jitgate login``'s sign-in with the company's IdP, from a terminal.

The gateway says which IdP and client to use (``GET /api/login``). Where the IdP's
discovery document offers it, the device authorization grant (RFC 8628) runs: the
terminal shows a code and a URL to open on any device, and polls the IdP's token
endpoint at the interval it asks for (five seconds more after each ``slow_down``) until
the person approves, declines or the code expires. Otherwise (or with ``--flow
browser``) the authorization code flow with PKCE runs through the local browser, the IdP
redirecting to a one-shot listener on a loopback port (RFC 8252 §7.3); ``state`` and the
ID token's ``nonce`` must be this sign-in's.

Either way the IdP's ID token is traded at the gateway's ``/oauth/token`` (RFC 8693) for a
gateway token; the gateway checks the ID token itself. The CLI is a public client: no
secret is involved.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import secrets
import sys
import webbrowser
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from identity.token_exchange import GRANT_TYPE, ID_TOKEN
from jitgate.errors import IdentityProviderError, PeerError, SignInRefused

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5
BROWSER_TIMEOUT = 300.0


async def fetch_json(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """The status and JSON object ``url`` answers; IdentityProviderError otherwise."""
    try:
        async with http.request(method, url, **kwargs) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise IdentityProviderError(f"{url} cannot be used: {exc}") from exc
    if not isinstance(body, dict):
        raise IdentityProviderError(f"{url} answered {response.status} without a JSON object")
    return response.status, body


async def id_token_from_idp(
    http: aiohttp.ClientSession, info: dict[str, Any], flow: str, open_browser: bool
) -> str:
    """Sign in at the IdP ``info`` (the gateway's ``/api/login``) names; its ID token."""
    issuer = str(info["issuer"]).rstrip("/")
    _, document = await fetch_json(http, "GET", issuer + "/.well-known/openid-configuration")
    device_endpoint = document.get("device_authorization_endpoint")
    if flow == "device" and not device_endpoint:
        raise SignInRefused("the IdP does not offer the device authorization grant")
    if flow != "browser" and isinstance(device_endpoint, str):
        return await device_sign_in(http, document, device_endpoint, info)
    return await browser_sign_in(http, document, info, open_browser)


async def device_sign_in(
    http: aiohttp.ClientSession, document: dict[str, Any], endpoint: str, info: dict[str, Any]
) -> str:
    client_id = str(info["client_id"])
    status, started = await fetch_json(
        http, "POST", endpoint, data={"client_id": client_id, "scope": " ".join(info["scopes"])}
    )
    if status != 200 or "device_code" not in started or "user_code" not in started:
        raise SignInRefused(f"the IdP refused to start a sign-in: {_said(started)}")
    complete = started.get("verification_uri_complete")
    print(
        f"To sign in, open {started.get('verification_uri')} and enter the code"
        f" {started['user_code']}" + (f"\n  (or open {complete})" if complete else ""),
        file=sys.stderr,
        flush=True,
    )
    interval = float(started.get("interval") or 5)
    deadline = asyncio.get_running_loop().time() + float(started.get("expires_in") or 600)
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": started["device_code"],
        "client_id": client_id,
    }
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(interval)
        status, answer = await fetch_json(http, "POST", document["token_endpoint"], data=form)
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error == "access_denied":
            raise SignInRefused("the sign-in was declined at the IdP")
        if error == "expired_token":
            break
        return _id_token(status, answer)
    raise SignInRefused("the code expired before the sign-in was approved; run jitgate login again")


async def browser_sign_in(
    http: aiohttp.ClientSession, document: dict[str, Any], info: dict[str, Any], open_it: bool
) -> str:
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    answered: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    async def callback(request: web.Request) -> web.Response:
        if not answered.done():
            answered.set_result(dict(request.query))
        return web.Response(text="jitgate: you can close this tab and go back to the terminal.")

    app = web.Application()
    app.router.add_get("/callback", callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        redirect_uri = f"http://127.0.0.1:{runner.addresses[0][1]}/callback"
        query = urlencode({
            "response_type": "code", "client_id": info["client_id"],
            "redirect_uri": redirect_uri, "scope": " ".join(info["scopes"]), "state": state,
            "nonce": nonce, "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        endpoint = str(document["authorization_endpoint"])
        url = endpoint + ("&" if "?" in endpoint else "?") + query
        print(f"To sign in, open {url}", file=sys.stderr, flush=True)
        if open_it:
            webbrowser.open(url)
        try:
            query_back = await asyncio.wait_for(answered, BROWSER_TIMEOUT)
        except TimeoutError as exc:
            raise SignInRefused("nobody signed in within 5 minutes") from exc
    finally:
        await runner.cleanup()
    if "error" in query_back:
        raise SignInRefused(f"the IdP refused the sign-in: {_said(query_back)}")
    if not hmac.compare_digest(query_back.get("state", ""), state):
        raise SignInRefused("the IdP's answer is not this sign-in's (state)")
    status, answer = await fetch_json(
        http, "POST", document["token_endpoint"],
        data={
            "grant_type": "authorization_code", "code": query_back.get("code", ""),
            "redirect_uri": redirect_uri, "client_id": info["client_id"],
            "code_verifier": verifier,
        },
    )  # fmt: skip
    id_token = _id_token(status, answer)
    if not hmac.compare_digest(str(_unverified_claims(id_token).get("nonce", "")), nonce):
        raise SignInRefused("the ID token is not this sign-in's (nonce)")
    return id_token


async def exchange_at_gateway(
    http: aiohttp.ClientSession, gateway_url: str, id_token: str
) -> dict[str, Any]:
    """Trade the ID token for the person's gateway token (RFC 8693)."""
    form = {"grant_type": GRANT_TYPE, "subject_token": id_token, "subject_token_type": ID_TOKEN}
    try:
        status, answer = await fetch_json(http, "POST", gateway_url + "/oauth/token", data=form)
    except IdentityProviderError as exc:
        raise PeerError(str(exc)) from exc
    if status != 200 or "access_token" not in answer:
        raise PeerError(f"the gateway refused the sign-in: {_said(answer)}")
    return answer


def _id_token(status: int, answer: dict[str, Any]) -> str:
    id_token = answer.get("id_token")
    if status != 200 or not isinstance(id_token, str):
        raise SignInRefused(f"the IdP gave no ID token: {_said(answer)}")
    return id_token


def _unverified_claims(id_token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: only to compare the nonce (the gateway checks
    the signature)."""
    try:
        segment = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError) as exc:
        raise SignInRefused("the IdP's ID token is not a JWT") from exc
    return claims if isinstance(claims, dict) else {}


def _said(answer: dict[str, Any]) -> str:
    text = str(answer.get("error_description") or answer.get("error") or "no reason given")
    return text[:200]
