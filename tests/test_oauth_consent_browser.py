"""The consent page in a real browser (Debian's Chromium through Playwright): it renders, works from the keyboard
alone, loads nothing from elsewhere, and hands the host its code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute

from _browser import chromium
from conftest import ServedApp
from experiture_mcp.sandbox import CAMPAIGNS_ONLY_TOKEN, DEMO_TOKEN
from test_oauth_failures import Hosted, authorize_url, pkce, serve

SCREENSHOTS = Path(
    os.environ.get("OAUTH_SCREENSHOTS", Path(__file__).resolve().parent.parent / "build" / "oauth-screenshots")
)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    api, app, hosted = serve(tmp_path_factory.mktemp("oauth-browser"))
    with api, app:
        yield hosted


class Host:
    """The chat host's side on loopback: its callback (noting every code it receives) and a page that frames ours."""

    def __init__(self) -> None:
        self.callbacks: list[str] = []
        self.frame_src = ""
        self.served = ServedApp(
            Starlette(routes=[StarletteRoute("/callback", self._callback), StarletteRoute("/frame", self._frame)])
        )
        self.callback = self.served.url + "/callback"

    async def _callback(self, request: StarletteRequest) -> Response:
        self.callbacks.append(str(request.url))
        return PlainTextResponse("the host has the code")

    async def _frame(self, _: StarletteRequest) -> Response:
        return HTMLResponse(f'<iframe id="f" src="{self.frame_src}" width="600" height="400"></iframe>')


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    chat = Host()
    with chat.served:
        yield chat


@pytest.fixture(scope="module")
def browser(hosted: Hosted) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Watched:
    """A page with every request and console message it caused, and the host's callback caught."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 800, "height": 700})
        self.requests: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda r: self._request(r))
        self.page.on("console", lambda m: self._console(m))

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium asks for a favicon on its own (not the page) and logs its 404, at a moment of its choosing.
        if urlsplit(message.location.get("url", "")).path != "/favicon.ico":
            self.console.append(f"{message.type}: {message.text}")

    def errors(self, *allowed: str) -> list[str]:
        """Console errors, less those the test allows."""
        return [m for m in self.console if m.startswith("error") and not any(a in m for a in allowed)]


def start(hosted: Hosted, host: Host) -> str:
    body = {"redirect_uris": [host.callback], "token_endpoint_auth_method": "none", "client_name": "Claude"}
    client_id = httpx2.post(hosted.url + "/register", json=body).json()["client_id"]
    return authorize_url(hosted, client_id, pkce()[1], redirect_uri=host.callback)


def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000  # a rendered page, not a blank one
    return path


def test_the_consent_page_works_from_the_keyboard_and_loads_nothing_from_elsewhere(
    browser: Browser, hosted: Hosted, host: Host
) -> None:
    watched = Watched(browser)
    page = watched.page
    host.callbacks.clear()
    page.goto(start(hosted, host))
    assert page.title() == "Connect Claude to Experiture"
    assert page.get_by_role("heading", name="Connect Claude to Experiture").is_visible()
    assert page.get_by_text(urlsplit(host.callback).netloc).first.is_visible()
    field = page.get_by_label("Your Experiture API token")
    assert field.get_attribute("type") == "password"
    assert page.evaluate("document.activeElement.id") == "token"  # focused on arrival: type straight away
    shot(page, "consent")

    page.keyboard.type(DEMO_TOKEN)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Allow"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focused button is visibly marked
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Deny"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(host.callback + "?*")

    [callback] = host.callbacks
    answer = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert answer["code"].startswith("exmcp_ac_") and answer["state"] == "st-1" and answer["iss"] == hosted.url
    ours = [u for u in watched.requests if u.startswith(hosted.url)]
    elsewhere = [u for u in watched.requests if not u.startswith(hosted.url) and u != callback]
    assert ours and elsewhere == []
    assert watched.errors() == [], watched.console  # no CSP violation either
    page.close()


def test_a_refused_token_and_a_partial_one_are_explained_on_the_page(
    browser: Browser, hosted: Hosted, host: Host
) -> None:
    watched = Watched(browser)
    page = watched.page
    host.callbacks.clear()
    page.goto(start(hosted, host))
    page.get_by_label("Your Experiture API token").fill("not-a-real-token")
    page.get_by_role("button", name="Allow").click()
    alert = page.get_by_role("alert")
    assert "Experiture rejected this token" in alert.inner_text()
    assert page.get_by_label("Your Experiture API token").input_value() == ""  # never echoed back
    shot(page, "consent-refused")

    page.get_by_label("Your Experiture API token").fill(CAMPAIGNS_ONLY_TOKEN)
    page.get_by_role("button", name="Allow").click()
    assert page.get_by_text("get_metrics will not work: this token lacks analytics:read").is_visible()
    assert CAMPAIGNS_ONLY_TOKEN not in page.content()
    shot(page, "consent-partial")
    page.get_by_role("button", name="Allow anyway").click()
    page.wait_for_url(host.callback + "?*")
    assert host.callbacks and "code=exmcp_ac_" in host.callbacks[0]
    refused_page = "the server responded with a status of 400"  # the refused paste's page itself
    assert watched.errors(refused_page) == [], watched.console
    page.close()


def test_the_page_cannot_be_framed(browser: Browser, hosted: Hosted, host: Host) -> None:
    watched = Watched(browser)
    page = watched.page
    host.frame_src = start(hosted, host)
    page.goto(host.served.url + "/frame")
    page.wait_for_timeout(500)
    assert page.frame_locator("#f").get_by_label("Your Experiture API token").count() == 0  # frame-ancestors 'none'
    page.close()
