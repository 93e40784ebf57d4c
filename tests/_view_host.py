"""A test host for the MCP Apps views: plays the host's side of the protocol around a view in a sandboxed iframe.

The page is what a web host does, reduced to its rules: the view goes into an iframe with `sandbox="allow-scripts"`
(an opaque origin) under the spec's default CSP; the host answers `ui/initialize`, sends `tool-input` and then
`tool-result` only after `ui/notifications/initialized`, proxies `tools/call` to answers recorded from the real
server, resizes the iframe on `size-changed`, and records every message the view sends.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Frame, Page, Request, Route

# The spec's default when a resource declares no domains (2026-01-26 "Host Behavior"; the draft adds object-src).
SPEC_DEFAULT_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' data:; connect-src 'none'; object-src 'none'"
)
SCREENSHOTS = Path(
    os.environ.get("VIEW_SCREENSHOTS", Path(__file__).resolve().parent.parent / "build" / "view-screenshots")
)

# Each element's width as a share of its parent's, in percent: what a bar shows.
BAR_SHARES = (
    "els => els.map(e => 100 * e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width)"
)
HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>test host</title>
<style>body { margin: 0; background: #888; } iframe { border: 0; display: block; background: transparent; }</style>
</head><body><div id="slot"></div><script>
"use strict";
window.host = { received: [], toolCalls: [], sizes: [], answers: {}, initialized: false };
function startHost(cfg) {
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.style.width = cfg.width + "px";
  frame.style.height = "80px";
  const csp = '<meta http-equiv="Content-Security-Policy" content="' + cfg.csp + '">';
  frame.srcdoc = cfg.html.replace("<head>", "<head>" + csp);
  const post = (message) => frame.contentWindow.postMessage(Object.assign({ jsonrpc: "2.0" }, message), "*");
  let nextId = 1000;
  window.host.notify = (method, params) => post({ method, params });
  window.host.request = (method, params) => new Promise((resolve) => {
    const id = nextId++;
    window.host.answers[id] = resolve;
    post({ id, method, params });
  });
  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow) return;
    const m = event.data;
    window.host.received.push(m);
    if (!m || m.jsonrpc !== "2.0") return;
    if (m.method === undefined && m.id in window.host.answers) {
      window.host.answers[m.id](m);
      delete window.host.answers[m.id];
    } else if (m.method === "ui/initialize") {
      post({ id: m.id, result: { protocolVersion: "2026-01-26", hostInfo: { name: "test-host", version: "1" },
        hostCapabilities: cfg.capabilities, hostContext: cfg.context } });
    } else if (m.method === "ui/notifications/initialized") {
      window.host.initialized = true;
      post({ method: "ui/notifications/tool-input", params: { arguments: cfg.arguments } });
      post({ method: "ui/notifications/tool-result", params: cfg.result });
    } else if (m.method === "tools/call") {
      window.host.toolCalls.push(m.params);
      const same = m.params && m.params.name === cfg.tool
        && JSON.stringify(m.params.arguments) === JSON.stringify(cfg.arguments);
      if (cfg.callResult && same) post({ id: m.id, result: cfg.callResult });
      else post({ id: m.id, error: { code: -32603, message: "the host refused the call" } });
    } else if (m.method === "ui/notifications/size-changed") {
      window.host.sizes.push(m.params);
      frame.style.height = m.params.height + "px";
    } else if (m.id !== undefined) {
      post({ id: m.id, error: { code: -32601, message: "not supported by the test host" } });
    }
  });
  document.getElementById("slot").append(frame);
}
</script></body></html>"""


@dataclass
class Watch:
    """What the browser reported while a page was open: console errors and warnings, page errors, requests."""

    console: list[str] = field(default_factory=list[str])
    requests: list[str] = field(default_factory=list[str])

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def on_page_error(self, error: Exception) -> None:
        self.console.append(f"pageerror: {error}")

    def on_request(self, request: Request) -> None:
        if not request.url.startswith(("about:", "data:")):
            self.requests.append(request.url)


def watched_page(browser: Browser, width: int = 720) -> tuple[Page, Watch]:
    """A fresh page that records console errors and aborts, and records, every request it would make."""
    page = browser.new_page(viewport={"width": width + 40, "height": 900}, device_scale_factor=1)
    page.set_default_timeout(5_000)
    watch = Watch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    page.on("request", watch.on_request)

    def refuse(route: Route) -> None:
        # Only opening a page file is let through (the view command's output); every load a page makes is refused.
        request = route.request
        if request.url.startswith("file://") and request.is_navigation_request() and request.frame.parent_frame is None:
            route.continue_()
        else:
            route.abort()

    page.route("**/*", refuse)
    return page, watch


@dataclass
class Shown:
    """A view the test host rendered."""

    page: Page
    frame: Frame
    watch: Watch

    def settle(self) -> None:
        """Wait until the host has applied the view's reported size: the iframe is as tall as the content."""
        deadline = time.monotonic() + 5
        while True:
            content = self.frame.evaluate("() => Math.ceil(document.body.getBoundingClientRect().height)")
            box = self.page.locator("iframe").bounding_box()
            if box is not None and content > 0 and abs(box["height"] - content) < 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the iframe stayed {box} high for content {content} px high")
            self.page.wait_for_timeout(20)

    def host(self, expression: str) -> Any:
        return self.page.evaluate(f"() => window.host.{expression}")

    def text(self, selector: str = "#app") -> str:
        return self.frame.locator(selector).inner_text()

    def widths(self, selector: str) -> list[float]:
        """Each matching bar's filled share of its track, in percent."""
        return self.frame.eval_on_selector_all(selector, BAR_SHARES)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        box = self.page.locator("iframe").bounding_box()
        assert box is not None
        viewport = self.page.viewport_size
        if viewport is not None and box["height"] > viewport["height"]:  # a frame is only painted inside the viewport
            self.page.set_viewport_size({"width": viewport["width"], "height": int(box["height"]) + 20})
        self.page.locator("iframe").screenshot(path=str(path))
        return path


def show(
    page: Page,
    watch: Watch,
    html: str,
    tool: str,
    arguments: dict[str, Any],
    result: dict[str, Any],
    *,
    call_result: dict[str, Any] | None = None,
    theme: str = "light",
    variables: dict[str, str] | None = None,
    width: int = 720,
    server_tools: bool = True,
) -> Shown:
    """Load the host page, start the view in it, and wait until the view shows an answer (or its text)."""
    page.set_content(HOST_PAGE)
    config: dict[str, Any] = {
        "html": html,
        "csp": SPEC_DEFAULT_CSP,
        "width": width,
        "tool": tool,
        "arguments": arguments,
        "result": result,
        "callResult": call_result,
        "capabilities": {"serverTools": {}} if server_tools else {},
        "context": {
            "theme": theme,
            "styles": {"variables": variables or {}},
            "displayMode": "inline",
            "availableDisplayModes": ["inline"],
            "locale": "en-US",
            "timeZone": "UTC",
            "platform": "web",
            "containerDimensions": {"maxWidth": width},
            "toolInfo": {"tool": {"name": tool, "inputSchema": {"type": "object"}}},
        },
    }
    page.evaluate("cfg => startHost(cfg)", json.loads(json.dumps(config)))
    page.wait_for_function("() => document.querySelector('iframe') && window.host.initialized")
    frame = page.frames[1]
    frame.wait_for_selector("body[data-shown]", timeout=10_000)
    shown = Shown(page, frame, watch)
    shown.settle()
    return shown
