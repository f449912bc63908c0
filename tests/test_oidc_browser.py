"""The web sign-in in a real headless Chromium (Playwright): the browser follows the IdP's
redirects, keeps the cookies and renders the pages, as a person's would.

Chromium is the system's (``apt-get install chromium``; ``.ci/run`` installs it when
missing) or Playwright's own (``python -m playwright install chromium``);
``JITGATE_CHROMIUM`` names another binary."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.fakeidp import FakeIdp
from tests.harness import GatewayThread
from tests.oidc_gateway import oidc_gateway

ALICE = "alice@example.com"


def chromium(bundled: str) -> str | None:
    """The binary to launch: None for Playwright's own; raises Skipped when there is none."""
    named = os.environ.get("JITGATE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    if named is None and not Path(bundled).exists():
        pytest.skip("no Chromium: apt-get install chromium, or playwright install chromium")
    return named


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[FakeIdp]:
    provider = FakeIdp()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], idp: FakeIdp) -> Iterator[GatewayThread]:
    gateway, _alerts = oidc_gateway(make_database, make_database("jg_oidc_browser_target"), idp)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
async def chrome() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        binary = chromium(playwright.chromium.executable_path)
        browser = await playwright.chromium.launch(executable_path=binary, headless=True)
        yield browser
        await browser.close()


async def test_a_person_signs_in_with_the_idp_in_a_browser(
    gw: GatewayThread, idp: FakeIdp, chrome: Browser
) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    base = f"http://127.0.0.1:{gw.http_port}"
    context = await chrome.new_context()
    page = await context.new_page()
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url.split("?")[0]))

    await page.goto(f"{base}/inbox")
    assert page.url == f"{base}/inbox"
    assert ALICE in await page.inner_text("header")
    assert f"{idp.issuer}/authorize" in visited and f"{base}/login/callback" in visited
    session = {c["name"]: c for c in await context.cookies()}["jitgate_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"

    await page.click("text=log out")
    assert "You are signed out of jitgate." in await page.inner_text("main")
    assert "jitgate_session" not in {c["name"] for c in await context.cookies()}
    await context.close()
