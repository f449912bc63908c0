"""The web pages' edges over real HTTP: after logging in only a path on this site is
followed, and demo mode (users picked without a token) runs only on loopback and says so
on every page."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yaml
from yarl import URL

from jitgate.config import parse_config
from jitgate.errors import ConfigError
from tests.harness import GatewayThread, gateway_config

ALICE, BOB = "alice@example.com", "bob@example.com"
OFF_SITE = [
    "//evil.example",
    "/\\evil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "https://evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example\\",
    "/inbox\\..\\\\evil.example",
    "//evil.example/%2e%2e",
    "",
    "inbox",
]
BANNER = "Demo mode is on"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_robust_web_target")


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_config(make_database("jg_robust_web_store"), target_dsn))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def demo_gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    config = gateway_config(make_database("jg_robust_web_demo"), target_dsn,
                            http={"listen": "127.0.0.1:0", "demo": True})  # fmt: skip
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


def client(gw: GatewayThread) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(origin(gw), cookie_jar=aiohttp.CookieJar(unsafe=True))


def origin(gw: GatewayThread) -> str:
    return f"http://127.0.0.1:{gw.http_port}"


async def after_login(gw: GatewayThread, token: str, target: str) -> tuple[str, str]:
    """The ``next`` the login form carries for ``/login?next=TARGET`` (``TARGET`` exactly
    as given), and where logging in with that target redirects."""
    async with client(gw) as http:
        url = URL(f"/login?next={quote(target, safe='')}", encoded=True)
        async with http.get(url) as response:
            page = await response.text()
        found = re.search(r'name="next" value="([^"]*)"', page)
        assert found is not None
        async with http.post("/login", data={"token": token, "next": target},
                             headers={"Origin": origin(gw)}, allow_redirects=False,
                             ) as response:  # fmt: skip
            assert response.status == 303
            return html.unescape(found.group(1)), response.headers["Location"]


@pytest.mark.parametrize("query", ["/%09/evil.example", "%2F%2Fevil", "/%5Cevil.example",
                                   "/%0a/evil.example", "%2F%09%2Fevil"])  # fmt: skip
async def test_a_login_link_with_an_encoded_off_site_target_goes_to_the_inbox(
    gw: GatewayThread, query: str
) -> None:
    url = URL(f"/login?next={query}", encoded=True)
    async with client(gw) as http, http.get(url) as response:
        found = re.search(r'name="next" value="([^"]*)"', await response.text())
    assert found is not None and found.group(1) == "/inbox"


@pytest.mark.parametrize("target", OFF_SITE, ids=repr)
async def test_login_never_redirects_off_site(gw: GatewayThread, target: str) -> None:
    assert await after_login(gw, gw.token(ALICE), target) == ("/inbox", "/inbox")


@pytest.mark.parametrize("target", ["/inbox", "/requests/12", "/sessions/ab-12?x=1&y=2"])
async def test_login_follows_a_path_on_this_site(gw: GatewayThread, target: str) -> None:
    assert await after_login(gw, gw.token(ALICE), target) == (target, target)


async def test_the_login_redirect_comes_back_to_the_page_asked_for(gw: GatewayThread) -> None:
    async with client(gw) as http:
        async with http.get("/requests/7?tab=1", allow_redirects=False) as response:
            assert response.status == 303
            location = response.headers["Location"]
        async with http.get(location) as response:
            found = re.search(r'name="next" value="([^"]*)"', await response.text())
    assert found is not None
    assert await after_login(gw, gw.token(ALICE), html.unescape(found.group(1))) == (
        "/requests/7?tab=1",
        "/requests/7?tab=1",
    )


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:8080", "[::]:8080", "192.0.2.10:8080", "gateway.example.com:8080"]
)
def test_demo_mode_refuses_a_listener_beyond_loopback(listen: str) -> None:
    raw = {"database_url": "postgresql://x@127.0.0.1/x", "http": {"listen": listen, "demo": True}}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, {})
    assert refused.value.key == "http.demo"
    for loopback in ("127.0.0.1:8080", "[::1]:8080", "localhost:8080", "127.0.0.2:0"):
        raw["http"] = {"listen": loopback, "demo": True}
        assert parse_config(raw, {}).demo


def test_serve_in_demo_mode_on_all_interfaces_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": "postgresql://nobody@127.0.0.1:1/none",
        "http": {"listen": "0.0.0.0:18080", "demo": True},
    }))  # fmt: skip
    served = subprocess.run([sys.executable, "-m", "jitgate", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert served.returncode == 2
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and "http.demo" in lines[0], served.stderr


async def test_every_demo_page_says_demo_mode_is_on(demo_gw: GatewayThread) -> None:
    async with client(demo_gw) as http:
        pages = []
        async with http.get("/login") as response:
            pages.append(await response.text())
        async with http.post("/login", data={"user": BOB},
                             headers={"Origin": origin(demo_gw)}) as response:  # fmt: skip
            pages.append(await response.text())  # the inbox
        for path in ("/requests/999", "/sessions/not-a-session"):
            async with http.get(path) as response:
                pages.append(await response.text())
        async with http.post("/login", data={"user": "nobody@example.com"},
                             headers={"Origin": origin(demo_gw)}) as response:  # fmt: skip
            pages.append(await response.text())
    for page in pages:
        assert BANNER in page, page[:400]


async def test_pages_outside_demo_mode_carry_no_banner(gw: GatewayThread) -> None:
    async with client(gw) as http, http.get("/login") as response:
        assert BANNER not in await response.text()
