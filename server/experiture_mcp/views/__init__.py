"""MCP Apps views: self-contained HTML pages a host shows next to a tool's answer, served as ui:// resources."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, Apps, ResourceCsp

from experiture_mcp.render import ATTENTION_LABELS, EXECUTION_STATES, HIGH_FAILURE_RATE

__all__ = [
    "APP_MIME_TYPE",
    "FUNNEL",
    "HISTORY",
    "OVERVIEW",
    "VIEWS",
    "View",
    "view_for",
    "view_html",
    "views_extension",
]


@dataclass(frozen=True)
class View:
    """One view: its HTML source in this package, the ui:// resource it is served as, and the tools that show it."""

    name: str
    title: str
    description: str
    tools: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"ui://experiture/{self.name}.html"

    @property
    def tool_meta(self) -> dict[str, Any]:
        """The tool's `_meta`: the spec's `ui.resourceUri`, and the flat key that pre-GA hosts still read."""
        return {"ui": {"resourceUri": self.uri}, "ui/resourceUri": self.uri}


FUNNEL = View(
    "funnel",
    "Campaign delivery funnel",
    "The latest run's pipeline as proportional bars: counts, drop-offs, failure rate, state and times.",
    ("get_status", "get_metrics"),
)
OVERVIEW = View(
    "overview",
    "Campaigns overview",
    "One row per campaign, those needing attention first: state, last run, sent, failed, failure rate; sortable.",
    ("get_overview",),
)
HISTORY = View(
    "history",
    "Campaign history",
    "The runs this server saw, oldest to newest as a chart of sent and failure rate, and newest first as a table.",
    ("get_history",),
)
VIEWS = (FUNNEL, OVERVIEW, HISTORY)

# A standalone page (experiture-mcp view) is opened as a file: it must load nothing there either.
STANDALONE_CSP = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
)
# What the views need to word things as the text does; the text's own tables stay the one source.
_CONFIG = {"states": EXECUTION_STATES, "attention": ATTENTION_LABELS, "highFailureRate": HIGH_FAILURE_RATE}


def view_for(tool: str) -> View | None:
    """The view a tool's answer is shown in, if it has one."""
    return next((view for view in VIEWS if tool in view.tools), None)


def _script_json(value: Any) -> str:
    # JSON inside <script>: no "<", ">" or "&" at all, so no text can close the element or open a comment.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def _source(name: str) -> str:
    return files("experiture_mcp.views").joinpath(name).read_text(encoding="utf-8")


@cache
def _page(view: View) -> str:
    page = _source(f"{view.name}.html")
    for marker, text in (
        ("/*@base.css*/", _source("base.css")),
        ("/*@bridge.js*/", _source("bridge.js")),
        ("/*@config*/", _script_json(_CONFIG)),
    ):
        if marker not in page:
            raise RuntimeError(f"views/{view.name}.html lacks the marker {marker}")
        page = page.replace(marker, text)
    for line in ("<!--@standalone-csp-->\n", "<!--@embedded-->\n"):
        if line not in page:
            raise RuntimeError(f"views/{view.name}.html lacks the marker {line.strip()}")
    # Indentation and whole-line comments are for the sources' readers; hosts load the page for every answer.
    lines = (line.strip() for line in page.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("// ")) + "\n"


def view_html(view: View, embedded: dict[str, Any] | None = None) -> str:
    """The view's HTML document; `embedded` (tool, arguments, result) makes a standalone page that needs no host."""
    page = _page(view)
    if embedded is None:
        # Hosts apply the resource's CSP themselves, and some insert markup ahead of the page's own <head> content,
        # where a CSP <meta> is ignored with a console error: only the standalone page carries one.
        return page.replace("<!--@standalone-csp-->\n", "", 1).replace("<!--@embedded-->\n", "", 1)
    data = f'<script type="application/json" id="experiture-embedded">{_script_json(embedded)}</script>\n'
    return page.replace("<!--@standalone-csp-->\n", STANDALONE_CSP, 1).replace("<!--@embedded-->\n", data, 1)


def views_extension() -> Apps:
    """The MCP Apps extension serving every view (text/html;profile=mcp-app, an explicit empty CSP, a border)."""
    apps = Apps()
    for view in VIEWS:
        apps.add_html_resource(
            view.uri,
            view_html(view),
            name=f"{view.name}_view",
            title=view.title,
            description=view.description,
            csp=ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[]),
            prefers_border=True,
        )
    return apps
