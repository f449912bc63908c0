"""A local fake of the Bot Framework: the channel's OpenID metadata and JWKS, the Entra
authority bots get their own tokens from, and the connector (``/v3/conversations/...``) that
records every activity a bot sends, all from one aiohttp server on a background thread.

The authority (``/botframework.com/v2.0/.well-known/openid-configuration`` and
``/botframework.com/oauth2/v2.0/token``, as Entra serves them) answers over TLS, since MSAL
takes only https authorities, on a port of its own, with a certificate from a CA made for
the test run, which the fake names in ``REQUESTS_CA_BUNDLE`` (MSAL's requests trust it,
as they trust an operator's private CA). :attr:`FakeTeams.token_requests` records the
grant each token request asked for (the client secret left out).

Tokens are real RS256 JWTs from a key the fake generates and publishes (endorsed for
``msteams``), with the claims the Bot Framework puts in them (``serviceurl`` in lower
case, as the channel spells it); :meth:`FakeTeams.channel_token`
mints one for a request into the bot, with any claim overridden, or signed by a key the
JWKS does not hold. The connector checks that the bot sends the token it was issued and
answers 429 or 5xx on command::

    with FakeTeams(APP_ID, PASSWORD) as teams:
        teams.fail("send", times=2, status=429, retry_after=1)
        ...  # a gateway with teams.openid_metadata / teams.token_endpoint pointed here
        card, = teams.wait_for("send")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

ISSUER = "https://api.botframework.com"
TENANT = "botframework.com"
SCOPE = "https://api.botframework.com/.default"
FIXTURES = Path(__file__).parent / "fixtures" / "teams"
_CA = trustme.CA()
_CA_FILE: str | None = None


def _trusted_ca() -> None:
    """The run's CA, written once and named in ``REQUESTS_CA_BUNDLE``."""
    global _CA_FILE
    if _CA_FILE is None:
        handle, _CA_FILE = tempfile.mkstemp(prefix="fake-teams-ca-", suffix=".pem")
        os.close(handle)
        _CA.cert_pem.write_to_path(_CA_FILE)
    os.environ["REQUESTS_CA_BUNDLE"] = _CA_FILE


@dataclass(frozen=True)
class Call:
    """What the bot sent: ``kind`` is ``send`` (a new activity), ``reply`` (in a thread),
    ``update``, ``member``, ``roster`` (a page of members) or ``open`` (a personal chat the
    bot opens, its id in ``activity_id``); ``activity`` the JSON body; ``client`` the
    caller's ``User-Agent``."""

    kind: str
    conversation: str
    activity_id: str | None
    activity: dict[str, Any]
    status: int
    client: str = ""


class FakeTeams:
    def __init__(self, app_id: str, password: str,
                 members: dict[str, dict[str, Any]] | None = None) -> None:  # fmt: skip
        self.app_id = app_id
        self.password = password
        self.members = members or {}
        self.page_size = 50  # Teams' smallest page: rosters of more come in pages
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-teams-1"})
        self.calls: list[Call] = []
        self._recorded = threading.Condition()
        self.tokens_issued = 0
        self.token_requests: list[dict[str, str]] = []
        self._tokens: set[str] = set()
        self._failures: dict[str, deque[tuple[int, int, str | None]]] = defaultdict(deque)
        self._ids = itertools.count(1772443290000)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-teams")
        self.port = 0
        self.login_port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeTeams:
        _trusted_ca()
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/openid", self._openid)
        app.router.add_get("/keys", self._keys)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._authority)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/v3/conversations", self._open)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._activity)
        app.router.add_post("/v3/conversations/{conversation}/activities/{id}", self._activity)
        app.router.add_put("/v3/conversations/{conversation}/activities/{id}", self._activity)
        app.router.add_get("/v3/conversations/{conversation}/members/{user}", self._member)
        app.router.add_get("/v3/conversations/{conversation}/pagedmembers", self._roster)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _CA.issue_cert("127.0.0.1").configure_cert(tls)
        login = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        self._loop.run_until_complete(login.start())
        self.port, self.login_port = (address[1] for address in runner.addresses)
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        """The Entra authority (https) the bot's tokens come from."""
        return f"https://127.0.0.1:{self.login_port}/{TENANT}"

    @property
    def service_url(self) -> str:
        return self.url + "/"

    def settings(self, **more: Any) -> dict[str, Any]:
        """The gateway's ``teams`` section for this fake."""
        return {"app_id": self.app_id, "app_password": self.password,
                "openid_metadata": self.url + "/openid",
                "token_endpoint": self.authority + "/oauth2/v2.0/token",
                **more}  # fmt: skip

    # -- what tests do -----------------------------------------------------------------------

    def channel_token(self, *, key: RSAKey | None = None, **claims: Any) -> str:
        """A token as the channel sends with an activity (``claims`` override or, as None,
        remove the defaults)."""
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": self.app_id, "serviceurl": self.service_url,
                   "nbf": now - 10, "exp": now + 3600, "iat": now - 10}  # fmt: skip
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = key or self.key
        header = {"alg": "RS256", "kid": signer.kid or "fake-teams-1", "typ": "JWT"}
        return jwt.encode(header, payload, signer)

    def activity(self, name: str, **changes: Any) -> dict[str, Any]:
        """A recorded activity from ``tests/fixtures/teams``, its ``serviceUrl`` this fake's."""
        activity: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
        activity["serviceUrl"] = self.service_url
        activity.update(changes)
        return activity

    def fail(self, kind: str, *, times: int, status: int, retry_after: int = 0,
             conversation: str | None = None) -> None:  # fmt: skip
        """Answer the next ``times`` calls of ``kind`` (to ``conversation`` only, when
        given) with ``status``."""
        self._failures[kind].extend([(status, retry_after, conversation)] * times)

    def _failure(self, kind: str, conversation: str) -> tuple[int, int] | None:
        queue = self._failures[kind]
        for failure in queue:
            if failure[2] is None or failure[2] == conversation:
                queue.remove(failure)
                return failure[0], failure[1]
        return None

    def calls_to(self, kind: str, conversation: str | None = None) -> list[Call]:
        return [c for c in list(self.calls) if c.kind == kind and c.status < 300
                and (conversation is None or c.conversation == conversation)]  # fmt: skip

    def wait_for(self, kind: str, count: int = 1, within: float = 15.0,
                 conversation: str | None = None) -> list[Call]:  # fmt: skip
        """The calls of ``kind`` (to ``conversation``) once there are ``count``; woken by
        each call as it is recorded, so the wait adds no polling delay."""
        with self._recorded:
            if self._recorded.wait_for(
                lambda: len(self.calls_to(kind, conversation)) >= count, within
            ):
                return self.calls_to(kind, conversation)
        raise AssertionError(f"the bot did not {kind} {count} time(s): {self.calls}")

    def _record(self, call: Call) -> None:
        with self._recorded:
            self.calls.append(call)
            self._recorded.notify_all()

    # -- the endpoints -----------------------------------------------------------------------

    async def _openid(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": ISSUER, "jwks_uri": self.url + "/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        })  # fmt: skip

    async def _keys(self, request: web.Request) -> web.Response:
        public = self.key.as_dict(private=False)
        return web.json_response({"keys": [{**public, "use": "sig", "endorsements": ["msteams"]}]})

    async def _authority(self, request: web.Request) -> web.Response:
        """The authority's OpenID configuration, the fields Entra's has that MSAL reads."""
        base = f"https://127.0.0.1:{self.login_port}/{request.match_info['tenant']}"
        return web.json_response({
            "token_endpoint": base + "/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": base + "/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
            "authorization_endpoint": base + "/oauth2/v2.0/authorize",
            "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
            "end_session_endpoint": base + "/oauth2/v2.0/logout",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        })  # fmt: skip

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests.append(
            {k: str(v) for k, v in form.items() if k != "client_secret"}
            | {"x-client-sku": request.headers.get("x-client-sku", "")}
        )
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.password:
            return web.json_response({"error": "invalid_client", "error_description":
                                      "AADSTS7000215: Invalid client secret provided."},
                                     status=401)  # fmt: skip
        if form.get("grant_type") != "client_credentials" or form.get("scope") != SCOPE:
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"token_type": "Bearer", "expires_in": 3599,
                                  "ext_expires_in": 3599, "access_token": token})  # fmt: skip

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and token in self._tokens

    async def _activity(self, request: web.Request) -> web.Response:
        conversation = request.match_info["conversation"]
        activity_id = request.match_info.get("id")
        kind = "update" if request.method == "PUT" else "reply" if activity_id else "send"
        body = await request.json() if request.can_read_body else {}
        status = 200 if self._authorized(request) else 401
        client = request.headers.get("User-Agent", "")
        failure = self._failure(kind, conversation) if status == 200 else None
        if failure is not None:
            status, retry_after = failure
            self._record(Call(kind, conversation, activity_id, body, status, client))
            headers = {"Retry-After": str(retry_after)} if status == 429 else {}
            return web.json_response({"error": {"code": "Throttled"}}, status=status,
                                     headers=headers)  # fmt: skip
        self._record(Call(kind, conversation, activity_id, body, status, client))
        if status != 200:
            return web.json_response({"error": {"code": "Unauthorized"}}, status=status)
        return web.json_response({"id": activity_id if kind == "update" else str(next(self._ids))})

    async def _open(self, request: web.Request) -> web.Response:
        body = await request.json()
        members = body.get("members") or [{}]
        chat = f"a:1Personal{str(members[0].get('id', '')).removeprefix('29:')}"
        status = 200 if self._authorized(request) else 401
        failure = self._failure("open", "") if status == 200 else None
        if failure is not None:
            status = failure[0]
        self._record(Call("open", "", chat, body, status))
        if status != 200:
            return web.json_response({"error": {"code": "Forbidden"}}, status=status)
        return web.json_response({"id": chat})

    async def _roster(self, request: web.Request) -> web.Response:
        conversation = request.match_info["conversation"]
        status = 200 if self._authorized(request) else 401
        failure = self._failure("roster", conversation) if status == 200 else None
        if failure is not None:
            status = failure[0]
        self._record(Call("roster", conversation, None, dict(request.query), status))
        if status != 200:
            return web.json_response({"error": {"code": "Failed"}}, status=status)
        size = min(int(request.query.get("pageSize", "500")), self.page_size)
        start = int(request.query.get("continuationToken", "0"))
        members = list(self.members.values())
        answer: dict[str, Any] = {"members": members[start : start + size]}
        if start + size < len(members):
            answer["continuationToken"] = str(start + size)
        return web.json_response(answer)

    async def _member(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        user = request.match_info["user"]
        failure = self._failure("member", request.match_info["conversation"])
        status = 200 if failure is None else failure[0]
        self._record(Call("member", request.match_info["conversation"], user, {}, status))
        if failure is not None:
            return web.json_response({"error": {"code": "ServiceError"}}, status=status)
        if user not in self.members:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation"}},
                                     status=404)  # fmt: skip
        return web.json_response(self.members[user])
