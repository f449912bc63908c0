"""The bot's own token for the Bot Framework connector, from Microsoft Entra by MSAL.

The client-credentials grant (the app id and password, scope
``https://api.botframework.com/.default``) with MSAL's ``ConfidentialClientApplication``,
its authority ``teams.token_endpoint`` without ``/oauth2/v2.0/token`` (Microsoft's
``https://login.microsoftonline.com/botframework.com`` by default). MSAL finds the token
endpoint from the authority's OpenID configuration and caches the token; this reuses it
until five minutes before it expires. MSAL's HTTP client (requests) blocks, so every call
into MSAL runs in a worker thread, never on the event loop; it trusts the CAs
``REQUESTS_CA_BUNDLE`` names, as requests does.

MSAL checks an authority's host against Microsoft's instance discovery; for a host that is
not one of Microsoft's sign-in hosts (a private cloud's, or a test's) that check is turned
off, and the start-up log says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import msal
import requests
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from bot.teams_hosting import SCOPE, ConnectorError
from jitgate.config import TeamsSettings

log = logging.getLogger("jitgate.teams")

TOKEN_PATH = "/oauth2/v2.0/token"
EARLY = 300.0


def authority_of(token_endpoint: str) -> str:
    """The Entra authority whose token endpoint ``token_endpoint`` is."""
    return token_endpoint.removesuffix(TOKEN_PATH)


class MsalClient:
    """MSAL's client for the bot's app registration, made on first use (MSAL reads the
    authority's metadata as it is made: call :meth:`get` in a worker thread)."""

    def __init__(self, settings: TeamsSettings) -> None:
        self._settings = settings
        self.authority = authority_of(settings.token_endpoint)
        self._microsoft = urlparse(self.authority).hostname in WELL_KNOWN_AUTHORITY_HOSTS
        if not self._microsoft:
            log.warning("teams.token_endpoint is not on a Microsoft sign-in host: MSAL's"
                        " instance discovery is off for it",
                        extra={"authority": self.authority})  # fmt: skip
        self._http = requests.Session()
        self._app: msal.ConfidentialClientApplication | None = None

    def get(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            self._app = msal.ConfidentialClientApplication(
                self._settings.app_id,
                client_credential=self._settings.app_password,
                authority=self.authority,
                instance_discovery=None if self._microsoft else False,
                http_client=self._http,
            )
        return self._app

    def close(self) -> None:
        self._http.close()


class BotToken:
    def __init__(self, settings: TeamsSettings) -> None:
        self._client = MsalClient(settings)
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if self._token is None or self._token[1] < time.monotonic():
                answer = await asyncio.to_thread(self._acquire)
                token = answer.get("access_token")
                if not isinstance(token, str):
                    raise ConnectorError(401, "the bot's token was refused: "
                                         f"{answer.get('error') or 'no access_token'}")  # fmt: skip
                lifetime = float(answer.get("expires_in") or 3600)
                self._token = (token, time.monotonic() + lifetime - EARLY)
            return self._token[0]

    def close(self) -> None:
        self._client.close()

    def _acquire(self) -> dict[str, Any]:
        """MSAL's answer (in a worker thread: MSAL blocks)."""
        with unreachable_authority():
            answer = self._client.get().acquire_token_for_client(scopes=[SCOPE])
        return answer if isinstance(answer, dict) else {}


@contextmanager
def unreachable_authority() -> Iterator[None]:
    """MSAL's failures to reach the authority, as :class:`ConnectorError` 503."""
    try:
        yield
    except (requests.RequestException, ValueError) as exc:
        # The authority's metadata or token endpoint did not answer (or not with JSON).
        raise ConnectorError(503, f"the token endpoint cannot be used: {exc}") from exc
