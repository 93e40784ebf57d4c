"""Command line: serve over stdio (the default), or `call` one tool and print the text the model would read."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import SecretStr, ValidationError

from experiture_mcp import __version__
from experiture_mcp.config import TOKEN_ENV, Settings

__all__ = ["main"]

log = logging.getLogger("experiture_mcp")

DEMO_BASE_URL = "https://demo.experiture.invalid/public/v1"  # never resolved: the demo app answers in-process
TOOLS = ("get_summary", "get_status", "get_metrics", "get_overview", "find_campaigns", "wait_for_run", "get_history")
VIEW_TOOLS = ("get_status", "get_metrics", "get_overview", "get_history")  # the tools with an MCP Apps view


def _common(demo_default: Any) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--demo",
        action="store_true",
        default=demo_default,
        help="use the built-in demo API and sample campaigns (no token, no network)",
    )
    common.add_argument("--base-url", default=argparse.SUPPRESS, help="Experiture API base URL (EXPERITURE_BASE_URL)")
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        dest="timeout_seconds",
        help="seconds to wait for one API request (EXPERITURE_TIMEOUT_SECONDS, default 10)",
    )
    common.add_argument(
        "--deadline",
        type=float,
        default=argparse.SUPPRESS,
        dest="deadline_seconds",
        help="seconds one tool call may take, retries included (EXPERITURE_DEADLINE_SECONDS, default 20)",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="directory of the file of remembered campaigns (EXPERITURE_DATA_DIR; default: the platform's data dir)",
    )
    common.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        default=argparse.SUPPRESS,
        help="remember no campaigns, so none can be found by name (EXPERITURE_MEMORY=off)",
    )
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="stderr log level (EXPERITURE_LOG_LEVEL, default WARNING)",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="experiture-mcp",
        allow_abbrev=False,  # else `campaigns forget --all` reads as an abbreviation of --allowed-hosts
        parents=[_common(False)],
        description="MCP server for Experiture campaigns. With no command it serves MCP over stdio.",
        epilog=f"The API token is read from {TOKEN_ENV}; it is never accepted as a flag, so it stays out of "
        "process listings and shell history.",
    )
    parser.add_argument("--version", action="version", version=f"experiture-mcp {__version__}")
    _hosted_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    call = commands.add_parser(
        "call",
        parents=[_common(argparse.SUPPRESS)],
        help="call one tool through the MCP protocol and print what the model reads",
    )
    call.add_argument("tool", choices=TOOLS)
    call.add_argument(
        "campaign_id",
        nargs="?",
        default="",
        help="a campaign UUID or link; for get_overview, several separated by commas (none: the remembered ones); "
        "for find_campaigns, words of a name",
    )
    call.add_argument("--json", action="store_true", help="print the structured content instead of the text")
    view = commands.add_parser(
        "view",
        parents=[_common(argparse.SUPPRESS)],
        help="write a standalone HTML page of a tool's MCP Apps view with the answer in it (opens nothing)",
    )
    view.add_argument("tool", choices=VIEW_TOOLS)
    view.add_argument("campaign_ids", nargs="+", metavar="CAMPAIGN_ID", help="one id; several for get_overview")
    view.add_argument("-o", "--output", metavar="FILE.html", help="write the page here instead of to stdout")
    doctor = commands.add_parser(
        "doctor",
        parents=[_common(argparse.SUPPRESS)],
        help="check the configuration and which scopes the token has; prints a checklist with fixes",
    )
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    from experiture_mcp.memory.commands import add_campaigns_command

    add_campaigns_command(commands, [_common(argparse.SUPPRESS)])
    from experiture_mcp.oauth.commands import add_oauth_command

    add_oauth_command(commands, [_common(argparse.SUPPRESS)])
    return parser


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _hosted_options(parser: argparse.ArgumentParser) -> None:
    hosted = parser.add_argument_group(
        "hosted mode",
        "Serve streamable HTTP at /mcp for remote clients; access keys come from EXPERITURE_MCP_ACCESS_KEYS.",
    )
    hosted.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default) for a client that starts the server, http to serve remote clients",
    )
    hosted.add_argument(
        "--host",
        dest="mcp_host",
        default=argparse.SUPPRESS,
        metavar="ADDRESS",
        help="address to bind (EXPERITURE_MCP_HOST, default 127.0.0.1)",
    )
    hosted.add_argument("--port", type=int, default=8000, choices=range(1, 65536), metavar="PORT", help="default: 8000")
    hosted.add_argument(
        "--workers", type=int, default=1, choices=range(1, 257), metavar="N", help="worker processes (default 1)"
    )
    hosted.add_argument(
        "--allowed-hosts",
        dest="mcp_allowed_hosts",
        type=_csv,
        action="extend",
        default=argparse.SUPPRESS,
        metavar="NAMES",
        help="comma-separated Host names clients use; needed off loopback (EXPERITURE_MCP_ALLOWED_HOSTS)",
    )
    hosted.add_argument(
        "--allowed-origins",
        dest="mcp_allowed_origins",
        type=_csv,
        action="extend",
        default=argparse.SUPPRESS,
        metavar="ORIGINS",
        help="comma-separated browser origins to accept, e.g. https://app.example.com (EXPERITURE_MCP_ALLOWED_ORIGINS)",
    )
    hosted.add_argument(
        "--auth",
        dest="mcp_auth",
        choices=["keys", "oauth"],
        default=argparse.SUPPRESS,
        help="keys: access keys plus X-Experiture-Token (default); oauth: chat hosts sign in and paste their "
        "token once (needs EXPERITURE_MCP_PUBLIC_URL and EXPERITURE_MCP_SECRET_KEY) (EXPERITURE_MCP_AUTH)",
    )
    hosted.add_argument(
        "--no-auth-behind-proxy",
        dest="mcp_no_auth_behind_proxy",
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow a non-loopback bind without access keys, when a proxy in front authenticates every caller",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in ("base_url", "timeout_seconds", "deadline_seconds", "log_level", "data_dir", "memory")
        or k.startswith("mcp_")
    }
    settings = Settings(**overrides)
    if not (args.demo or settings.demo):  # --demo, or EXPERITURE_DEMO=1 as hosted workers receive it
        return settings
    from experiture_mcp.sandbox import DEMO_TOKEN

    demo: dict[str, Any] = {"demo": True, "base_url": DEMO_BASE_URL}
    settings = Settings(**(overrides | demo))
    if settings.api_token is None:  # a demo token from the environment picks a demo scope set
        settings = settings.model_copy(update={"api_token": SecretStr(DEMO_TOKEN)})
    return settings


def _demo_transport(settings: Settings) -> Any:
    """The in-process demo API transport when settings.demo is on; the demo app loads only then."""
    if not settings.demo:
        return None
    from experiture_mcp.sandbox import demo_transport as transport

    return transport(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `experiture-mcp` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        problems = [e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False, include_input=False)]
        if args.command == "doctor":
            from experiture_mcp.doctor import run_doctor

            return run_doctor(None, problems, token_set=bool(os.environ.get(TOKEN_ENV)), as_json=args.json)
        for problem in problems:
            sys.stderr.write(f"experiture-mcp: {problem}\n")
        return 2
    from experiture_mcp.logs import configure_logging

    configure_logging(settings.log_level)
    if args.command == "doctor":
        from experiture_mcp.doctor import run_doctor

        token_set = settings.token is not None
        return run_doctor(settings, [], token_set=token_set, as_json=args.json, transport=_demo_transport(settings))
    if args.command == "campaigns":
        from experiture_mcp.memory.commands import run_campaigns

        return run_campaigns(settings, args, transport=_demo_transport(settings))
    if args.command == "oauth":
        from experiture_mcp.oauth.commands import run_oauth

        return run_oauth(settings, args)
    if args.command == "call":
        return anyio.run(_call, settings, args.tool, args.campaign_id, args.json)
    if args.command == "view":
        return anyio.run(_view, settings, args.tool, args.campaign_ids, args.output)
    if args.transport == "http":
        from experiture_mcp.hosted import serve

        return serve(settings, args.port, args.workers)
    return _serve_stdio(settings)


def _serve_stdio(settings: Settings) -> int:
    from experiture_mcp.server import build_server

    if settings.token is None:
        log.warning("%s is not set: every tool will answer 'not configured'. Set it, or run with --demo.", TOKEN_ENV)
    if sys.stdin.isatty():
        where = "the built-in demo API" if settings.demo else settings.base_url
        sys.stderr.write(
            f"experiture-mcp {__version__}: an MCP server speaking on stdin/stdout, using {where}.\n"
            "MCP clients (Claude Desktop, Claude Code, Cursor, VS Code) start it themselves: see the README.\n"
            "To see what a tool answers: experiture-mcp call get_status <campaign-id> --demo\n"
            "Waiting for an MCP client on stdin; press Ctrl-C to quit.\n"
        )
    server = build_server(settings, transport=_demo_transport(settings))
    try:
        server.run()
    except KeyboardInterrupt:
        return 130
    return 0


async def _call(settings: Settings, tool: str, campaign_id: str, as_json: bool) -> int:
    from mcp import Client
    from mcp.types import TextContent

    from experiture_mcp.server import build_server

    server = build_server(settings, transport=_demo_transport(settings))
    async with Client(server) as client:
        argument = {"get_overview": "campaign_ids", "find_campaigns": "query"}.get(tool, "campaign_id")
        result = await client.call_tool(tool, {argument: campaign_id})
    if as_json and not result.is_error:
        out = json.dumps(result.structured_content, indent=2, ensure_ascii=False)
    else:
        out = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    sys.stdout.write(out + "\n")  # stdout-ok: `call` is a terminal command, not the protocol
    return 1 if result.is_error else 0


async def _view(settings: Settings, tool: str, campaign_ids: list[str], output: str | None) -> int:
    from mcp import Client

    from experiture_mcp.server import build_server
    from experiture_mcp.views import view_for, view_html

    view = view_for(tool)
    assert view is not None, tool  # argparse offers only VIEW_TOOLS
    if tool != "get_overview" and len(campaign_ids) != 1:
        sys.stderr.write(f"experiture-mcp: {tool} shows one campaign; {len(campaign_ids)} ids were given.\n")
        return 2
    arguments: dict[str, Any] = (
        {"campaign_ids": ",".join(campaign_ids)} if tool == "get_overview" else {"campaign_id": campaign_ids[0]}
    )
    server = build_server(settings, transport=_demo_transport(settings))
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    wire = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    page = view_html(view, {"tool": tool, "arguments": arguments, "result": wire})
    if output is None:
        sys.stdout.write(page)  # stdout-ok: `view` writes the page for a shell redirect
    else:
        try:
            with open(output, "w", encoding="utf-8") as file:
                file.write(page)
        except OSError as exc:
            sys.stderr.write(f"experiture-mcp: cannot write {output}: {exc.strerror}\n")
            return 2
        sys.stderr.write(f"experiture-mcp: wrote {output} ({len(page.encode()):,} bytes); open it in a browser.\n")
    return 1 if result.is_error else 0
