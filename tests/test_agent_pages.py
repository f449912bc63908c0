"""Delegating to an agent from the web console: the page grants a narrowed token shown
once, which acts as the person via the agent, lists the live delegation, and revokes it;
a cross-site form is refused and a bad agent name changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.harness import GatewayThread, gateway_config
from tests.test_web import api, client, login, origin

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str]) -> Iterator[GatewayThread]:
    store, target = make_database("jg_agent_pages_store"), make_database("jg_agent_pages_t")
    gateway = GatewayThread(gateway_config(store, target))
    yield gateway
    gateway.stop()


async def test_the_console_grants_lists_and_revokes_a_delegation(gw: GatewayThread) -> None:
    async with client(gw) as http:
        await login(http, gw, gw.token(ALICE))
        headers = {"Origin": origin(gw)}
        form = {"name": "claude-code", "resource": "prod", "class": "read", "ttl": "1h"}
        async with http.post("/agents", data=form, headers=headers) as response:
            assert response.status == 200
            page = await response.text()
        match = re.search(r"<pre>(jg_[^<]+)</pre>", page)
        assert match is not None, page
        token = match[1]
        status, who = await api(http, "GET", "/api/whoami", token)
        assert status == 200, who
        assert (who["email"], who["agent"], who["resources"], who["classes"]) == (
            ALICE, "claude-code", ["prod"], ["read"],
        )  # fmt: skip
        async with http.get("/agents") as response:
            listed = await response.text()
        assert "claude-code" in listed and token not in listed  # the token is shown once

        async with http.post("/agents", data=form, headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403
        bad = {"name": "<script>", "ttl": "1h"}
        async with http.post("/agents", data=bad, headers=headers) as response:
            assert response.status == 400
            assert "<script>" not in await response.text()

        data = {"name": "claude-code"}
        async with http.post("/agents/revoke", data=data, headers=headers) as response:
            assert response.status == 200
            assert "1 token(s) revoked" in await response.text()
        status, _ = await api(http, "GET", "/api/whoami", token)
        assert status == 401
