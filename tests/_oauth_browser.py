"""An HTML-form client: follows /authorize to the consent page, fills the form as a person would, submits it."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
from mcp.shared.auth import AuthorizationCodeResult

__all__ = ["Browser", "Form", "Page", "parse_page"]


@dataclass
class Form:
    """One form of a page: where it posts, its fields (hidden ones filled), its buttons."""

    action: str
    fields: dict[str, str] = field(default_factory=dict[str, str])
    password: str | None = None
    buttons: dict[str, str] = field(default_factory=dict[str, str])  # value -> name


@dataclass
class Page:
    """A fetched page: status, headers, text and forms."""

    status: int
    headers: httpx2.Headers
    html: str
    forms: list[Form]
    text: str


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "form":
            self.forms.append(Form(action=a.get("action", "")))
        elif tag == "input" and self.forms:
            if a.get("type") == "password":
                self.forms[-1].password = a.get("name")
            elif a.get("type") == "hidden":
                self.forms[-1].fields[a.get("name", "")] = a.get("value", "")
        elif tag == "button" and self.forms:
            self.forms[-1].buttons[a.get("value", "")] = a.get("name", "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse_page(response: httpx2.Response) -> Page:
    parser = _Parser()
    parser.feed(response.text)
    text = " ".join(" ".join(parser.text).split())
    return Page(response.status_code, response.headers, response.text, parser.forms, text)


class Browser:
    """Drives the consent page for OAuthClientProvider: its redirect_handler and callback_handler."""

    def __init__(self, tokens: list[str], *, button: str = "allow", confirm: bool = True) -> None:
        self.tokens = list(tokens)  # pasted in turn while the page says the previous one was refused
        self.button = button
        self.confirm = confirm
        self.pages: list[Page] = []
        self.result: AuthorizationCodeResult | None = None
        self.final: httpx2.URL | None = None

    async def open(self, http: httpx2.AsyncClient, url: str) -> Page:
        response = await http.get(url)
        while response.status_code in (302, 303) and not self._is_callback(response):
            response = await http.get(urljoin(str(response.url), response.headers["location"]))
        if self._is_callback(response):
            self._done(response)
        page = parse_page(response)
        self.pages.append(page)
        return page

    def _is_callback(self, response: httpx2.Response) -> bool:
        location = response.headers.get("location", "")
        return response.status_code in (302, 303) and "/callback" in urlsplit(location).path

    def _done(self, response: httpx2.Response) -> None:
        location = httpx2.URL(response.headers["location"])
        self.final = location
        query = {k: v[0] for k, v in parse_qs(location.query.decode()).items()}
        if "code" in query:
            self.result = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def submit(self, http: httpx2.AsyncClient, page: Page, base: str, button: str, token: str | None) -> Page:
        form = page.forms[0]
        data = dict(form.fields)
        if token is not None and form.password:
            data[form.password] = token
        data[form.buttons[button]] = button
        response = await http.post(urljoin(base, form.action), data=data, headers={"Sec-Fetch-Site": "same-origin"})
        if self._is_callback(response):
            self._done(response)
        page = parse_page(response)
        self.pages.append(page)
        return page

    async def redirect_handler(self, authorization_url: str) -> None:
        base = f"{urlsplit(authorization_url).scheme}://{urlsplit(authorization_url).netloc}"
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            page = await self.open(http, authorization_url)
            while self.final is None and self.tokens:
                if self.button == "deny":
                    page = await self.submit(http, page, base, "deny", None)
                    break
                page = await self.submit(http, page, base, "allow", self.tokens.pop(0))
                if self.final is None and "confirm" in (page.forms[0].buttons if page.forms else {}):
                    page = await self.submit(http, page, base, "confirm" if self.confirm else "deny", None)

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError(f"no code: the consent ended at {self.final} with {self.pages[-1].text[:300]!r}")
        return self.result
