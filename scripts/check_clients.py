"""The README's client snippets run by the real clients against the demo server, one line per check (check-clients).

Each snippet is taken from README.md (the fenced block after `<!-- check-clients: NAME -->`) and rewritten only to
start this checkout with --demo (`uv run --directory CHECKOUT experiture-mcp --demo` for `uvx experiture-mcp`) and
to reach the hosted demo server on loopback. Every client runs in a throwaway HOME, with the environment a user
would have: EXPERITURE_API_TOKEN and EXPERITURE_MCP_KEY exported. The token is the demo's second tenant, whose
campaigns the server shows only when that token reaches it, so a tool call proves the token got through.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import secrets
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent, TextResourceContents

from experiture_mcp.sandbox import TENANT_B_CAMPAIGNS, TENANT_B_TOKEN

CHECKOUT = Path(__file__).resolve().parent.parent
README = CHECKOUT / "README.md"
EXAMPLE_URL = "https://mcp.example.com/mcp"
SERVER_ARGS = ["run", "--directory", str(CHECKOUT), "experiture-mcp", "--demo"]
GLOBEX = next(iter(TENANT_B_CAMPAIGNS.values()))  # visible only with TENANT_B_TOKEN
ACCESS_KEY = "check-clients-" + secrets.token_urlsafe(24)
TIMEOUT = 180.0  # one client command; a cold `uv run` on a busy CI machine takes a while
SNIPPETS = (  # every snippet the README marks for this check
    *("claude-stdio", "claude-stdio-json", "claude-http", "claude-http-json"),
    *("gemini-stdio", "gemini-http", "codex-stdio", "codex-http", "mcp-remote", "claude-oauth"),
)
IN_NETNS = os.environ.get("CHECK_CLIENTS_NETNS") == "1"


Snippets = dict[str, tuple[str, str]]  # README snippet name -> (language, text)


class CheckFailed(Exception):
    """One check failed; the message says why, with the client's own output."""


@dataclass
class Outcome:
    """The lines one group of checks prints, and whether all of them passed."""

    lines: list[str] = field(default_factory=list[str])
    failed: bool = False


def snippets() -> Snippets:
    """Every marked snippet of the README: name -> (language, text)."""
    found = re.findall(r"<!-- check-clients: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", README.read_text(), re.S)
    return {name: (lang, text) for name, lang, text in found}


def rewrite(name: str, lang: str, text: str, url: str) -> str:
    """The snippet pointed at this checkout with --demo and at the loopback server, and nothing else changed."""
    server = shlex.join(SERVER_ARGS)
    if lang == "sh":
        text = text.replace("uvx -- experiture-mcp", f"uv -- {server}").replace("uvx experiture-mcp", f"uv {server}")
    elif lang == "toml":
        text = text.replace('command = "uvx"', 'command = "uv"')
        text = text.replace('args = ["experiture-mcp"]', f"args = {json.dumps(SERVER_ARGS)}")
    elif lang == "json":
        config = json.loads(text)
        for entry in config["mcpServers"].values():
            if entry.get("command") == "uvx" and entry.get("args") == ["experiture-mcp"]:
                entry["command"], entry["args"] = "uv", SERVER_ARGS
            if entry.get("command") == "npx":
                entry["command"], entry["args"] = _local_mcp_remote(name, entry["args"])
        text = json.dumps(config, indent=2)
    text = text.replace(EXAMPLE_URL, url)
    if "uvx" in text or "npx" in text or "mcp.example.com" in text:
        raise CheckFailed(f"README snippet {name} no longer has the shape this check rewrites:\n{text}")
    return text


def _local_mcp_remote(name: str, args: list[str]) -> tuple[str, list[str]]:
    # `npx -y mcp-remote@X` would fetch it: run the pinned copy, and make sure the README names a matching version.
    pinned = os.environ["MCP_REMOTE_VERSION"]
    if args[:1] != ["-y"] or not args[1].startswith("mcp-remote@") or not pinned.startswith(args[1].split("@")[1]):
        raise CheckFailed(f"README snippet {name}: expected npx -y mcp-remote@<a prefix of {pinned}>, got {args[:2]}")
    return _which("mcp-remote"), args[2:]


def _which(command: str) -> str:
    found = shutil.which(command, path=os.environ["CLIENTS_PATH"])
    if found is None:
        raise CheckFailed(f"{command} is not on CLIENTS_PATH ({os.environ['CLIENTS_PATH']})")
    return found


def bring_up_loopback() -> None:
    """Set `lo` up: a fresh network namespace has it down."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def hosted_server(log: Path, access_key: str | None, *, oauth: bool = False) -> Generator[str]:
    """The hosted demo server on a free loopback port, with one access key, none, or OAuth; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPERITURE_")}
    env["EXPERITURE_DATA_DIR"] = str(log.parent / f"data-{port}")  # never the user's own memory of campaigns
    if access_key is not None:
        env["EXPERITURE_MCP_ACCESS_KEYS"] = access_key
    if oauth:
        env["EXPERITURE_MCP_AUTH"] = "oauth"
        env["EXPERITURE_MCP_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        env["EXPERITURE_MCP_SECRET_KEY"] = secrets.token_urlsafe(48)
    command = [_which("uv"), "run", "--frozen", "--directory", str(CHECKOUT), "experiture-mcp"]
    command += ["--transport", "http", "--port", str(port), "--demo"]
    with log.open("w") as err:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed(f"the hosted demo server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class Servers:
    """The hosted demo servers the HTTP snippets point at."""

    url: str  # with ACCESS_KEY
    open_url: str  # without access keys, as a developer runs it on loopback
    oauth_url: str  # --auth oauth: clients sign in on its consent page


class Sandbox:
    """A throwaway HOME and project folder, and the environment a user's client would start with."""

    def __init__(self, root: Path, name: str) -> None:
        self.home = root / name / "home"
        self.project = root / name / "project"
        self.home.mkdir(parents=True)
        self.project.mkdir(parents=True)
        self.env = {
            "HOME": str(self.home),
            "PATH": os.environ["CLIENTS_PATH"],
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "EXPERITURE_API_TOKEN": TENANT_B_TOKEN,
            "EXPERITURE_MCP_KEY": ACCESS_KEY,
            # Claude Code: no telemetry, error reports, update checks or other non-essential traffic.
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "NO_UPDATE_NOTIFIER": "1",
        }
        if not IN_NETNS:  # no namespace to cut the network: at least send proxy-aware traffic nowhere
            dead = "http://127.0.0.1:9"
            self.env |= {"HTTPS_PROXY": dead, "HTTP_PROXY": dead, "NO_PROXY": "127.0.0.1,localhost"}

    def run(self, command: list[str] | str, *, env: dict[str, str] | None = None) -> str:
        """Run a client command (a README shell snippet when a string) in the project folder; its output."""
        argv = ["bash", "-euo", "pipefail", "-c", command] if isinstance(command, str) else command
        try:
            done = subprocess.run(
                argv,
                cwd=self.project,
                env=self.env if env is None else env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(
                f"`{_shown(command)}` did not finish in {TIMEOUT:.0f}s: {exc.stdout}{exc.stderr}"
            ) from None
        if done.returncode != 0:
            raise CheckFailed(f"`{_shown(command)}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr


def _shown(command: list[str] | str) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def expect_status(listing: str, server: str, status: str) -> None:
    """The client's listing shows `server` with `status`."""
    line = next((line for line in listing.splitlines() if re.match(rf"\W*{server}(: |\s)", line)), None)
    if line is None or status not in line:
        raise CheckFailed(f"expected {server} to be {status!r}, the client listed:\n{listing}")


def start_client(sandbox: Sandbox, client: str) -> None:
    """The client's own version command: a client that cannot start (e.g. refuses this Node) fails with its message."""
    sandbox.run([client, "--version"])


# Claude Code


def claude(root: Path, servers: Servers, readme: Snippets) -> Iterator[str]:
    start_client(Sandbox(root, "claude-version"), "claude")
    for name, over in (("claude-stdio", "stdio"), ("claude-http", "http")):
        sandbox = Sandbox(root, name)
        sandbox.run(rewrite(name, *readme[name], servers.url))
        expect_status(sandbox.run(["claude", "mcp", "list"]), "experiture", "✔ Connected")
        yield f"claude {over} connected (claude mcp add, claude mcp list)"
    for name, over in (("claude-stdio-json", "stdio"), ("claude-http-json", "http")):
        sandbox = Sandbox(root, name)
        (sandbox.project / ".mcp.json").write_text(rewrite(name, *readme[name], servers.url))
        expect_status(sandbox.run(["claude", "mcp", "list"]), "experiture", "Pending approval")
        _approve_mcp_json(sandbox)
        expect_status(sandbox.run(["claude", "mcp", "list"]), "experiture", "✔ Connected")
        yield f"claude {over} connected (.mcp.json, pending approval until approved)"
    sandbox = Sandbox(root, "claude-http-no-key")
    sandbox.env.pop("EXPERITURE_MCP_KEY")
    sandbox.run(rewrite("claude-http", *readme["claude-http"], servers.url))
    expect_status(sandbox.run(["claude", "mcp", "list"]), "experiture", "Failed to connect")
    yield "claude http refused without the access key (the key in the snippet is what lets it in)"
    sandbox = Sandbox(root, "claude-oauth")
    sandbox.run(rewrite("claude-oauth", *readme["claude-oauth"], servers.oauth_url))
    expect_status(sandbox.run(["claude", "mcp", "list"]), "experiture", "Needs authentication")
    yield "claude http with --auth oauth: needs authentication (it found the sign-in), not failed to connect"


def _approve_mcp_json(sandbox: Sandbox) -> None:
    # What a user's answers to `claude` write: the folder is trusted, and the project's server approved.
    state_file = sandbox.home / ".claude.json"
    state = json.loads(state_file.read_text())
    state.setdefault("projects", {}).setdefault(str(sandbox.project), {})["hasTrustDialogAccepted"] = True
    state_file.write_text(json.dumps(state))
    settings = sandbox.project / ".claude" / "settings.local.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"enabledMcpjsonServers": ["experiture"]}))


# Gemini CLI


def gemini(root: Path, servers: Servers, readme: Snippets) -> Iterator[str]:
    start_client(Sandbox(root, "gemini-version"), "gemini")
    for name, over in (("gemini-stdio", "stdio"), ("gemini-http", "http")):
        sandbox = Sandbox(root, name)
        settings = {
            "telemetry": {"enabled": False},
            "privacy": {"usageStatisticsEnabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        }
        (sandbox.home / ".gemini").mkdir()
        (sandbox.home / ".gemini" / "settings.json").write_text(json.dumps(settings))
        # What trusting the folder at Gemini CLI's prompt writes; untrusted, it starts no server at all.
        (sandbox.home / ".gemini" / "trustedFolders.json").write_text(
            json.dumps({str(sandbox.project): "TRUST_FOLDER"})
        )
        sandbox.run(rewrite(name, *readme[name], servers.url))
        expect_status(sandbox.run(["gemini", "mcp", "list"]), "experiture", "- Connected")
        yield f"gemini {over} connected (gemini mcp add, gemini mcp list)"


# Codex


CODEX_SETTINGS = """\
check_for_update_on_startup = false

[analytics]
enabled = false

"""


class AppServer:
    """`codex app-server`: JSON-RPC, one message a line, over its stdin and stdout."""

    def __init__(self, sandbox: Sandbox, stderr: IO[str]) -> None:
        self._process = subprocess.Popen(
            ["codex", "app-server"],
            cwd=sandbox.project,
            env=sandbox.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        self._process.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its result; notifications that arrive meanwhile are kept."""
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise CheckFailed(f"codex app-server did not answer {method} in {TIMEOUT:.0f}s") from None
            if not line:
                raise CheckFailed(f"codex app-server exited (code {self._process.wait()}) before answering {method}")
            message: dict[str, Any] = json.loads(line)
            if "method" in message:
                self.notifications.append(message)
            elif message.get("id") == self._next_id:
                if "error" in message:
                    raise CheckFailed(f"codex app-server answered {method} with {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()


def codex(root: Path, servers: Servers, readme: Snippets) -> Iterator[str]:
    start_client(Sandbox(root, "codex-version"), "codex")
    for name, over in (("codex-stdio", "stdio"), ("codex-http", "http")):
        sandbox = Sandbox(root, name)
        (sandbox.home / ".codex").mkdir()
        (sandbox.home / ".codex" / "config.toml").write_text(CODEX_SETTINGS + rewrite(name, *readme[name], servers.url))
        stderr_path = sandbox.home / "app-server.log"
        with stderr_path.open("w") as stderr:
            server = AppServer(sandbox, stderr)
            try:
                _drive_codex(server)
            except CheckFailed as exc:
                raise CheckFailed(
                    f"{exc}\n{json.dumps(server.notifications)[-2000:]}\n{stderr_path.read_text()}"
                ) from None
            finally:
                server.close()
        yield f"codex {over} connected: get_status and a resource read of the token's own campaign (codex app-server)"
    # Codex probes a server without a bearer token for OAuth, GET /mcp first: an event stream that never ended made
    # it give up after 5 s and report "Unknown"; the 405 lets it answer at once.
    sandbox = Sandbox(root, "codex-probe")
    sandbox.run(["codex", "mcp", "add", "experiture", "--url", servers.open_url])
    started = time.monotonic()
    listing = sandbox.run(["codex", "mcp", "list"])
    took = time.monotonic() - started
    expect_status(listing, "experiture", "Unsupported")  # "Unknown" when its probe timed out
    yield f"codex http auth probe answered in {took:.1f}s: Unsupported, not Unknown (GET /mcp gets 405)"


def _drive_codex(server: AppServer) -> None:
    server.request("initialize", {"clientInfo": {"name": "experiture-check-clients", "version": "1"}})
    server.send({"method": "initialized"})
    thread = server.request("thread/start", {})["thread"]["id"]
    status = server.request("mcpServerStatus/list", {})["data"]
    if [s["name"] for s in status] != ["experiture"] or "get_status" not in status[0]["tools"]:
        raise CheckFailed(f"codex lists these MCP servers and tools: {json.dumps(status)[:2000]}")
    call = {"server": "experiture", "threadId": thread, "tool": "get_status", "arguments": {"campaign_id": GLOBEX}}
    result = server.request("mcpServer/tool/call", call)
    text = " ".join(c.get("text", "") for c in result["content"])
    if result.get("isError") or GLOBEX not in text:
        raise CheckFailed(f"codex's get_status call answered: {json.dumps(result)[:2000]}")
    uri = f"experiture://campaigns/{GLOBEX}/summary"
    contents = server.request("mcpServer/resource/read", {"server": "experiture", "threadId": thread, "uri": uri})
    if json.loads(contents["contents"][0]["text"])["campaignId"] != GLOBEX:
        raise CheckFailed(f"codex's read of {uri} answered: {json.dumps(contents)[:2000]}")


# mcp-remote, driven by the SDK's own stdio client


def mcp_remote(root: Path, servers: Servers, readme: Snippets) -> Iterator[str]:
    sandbox = Sandbox(root, "mcp-remote")
    entry = json.loads(rewrite("mcp-remote", *readme["mcp-remote"], servers.url))["mcpServers"]["experiture"]
    env: dict[str, str] = dict(entry["env"])
    for placeholder, value in (("paste-your-access-key-here", ACCESS_KEY), ("paste-your-token-here", TENANT_B_TOKEN)):
        env = {k: v.replace(placeholder, value) for k, v in env.items()}
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env={**sandbox.env, **env})
    stderr_path = sandbox.home / "mcp-remote.log"
    with stderr_path.open("w") as stderr:
        try:
            done = anyio.run(_drive_mcp_remote, params, stderr)
        except Exception as exc:
            raise CheckFailed(f"mcp-remote: {exc!r}\n{stderr_path.read_text()}") from None
    yield f"mcp-remote http connected: {done} (SDK stdio client)"


async def _drive_mcp_remote(params: StdioServerParameters, stderr: TextIO) -> str:
    with anyio.fail_after(TIMEOUT):
        async with Client(stdio_client(params, errlog=stderr)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            if not {"get_status", "get_summary", "get_metrics", "get_overview"} <= tools:
                raise CheckFailed(f"tools/list through mcp-remote listed {sorted(tools)}")
            result = await client.call_tool("get_status", {"campaign_id": GLOBEX})
            text = result.content[0].text if isinstance(result.content[0], TextContent) else ""
            if result.is_error or GLOBEX not in text:
                raise CheckFailed(f"get_status through mcp-remote answered {result}")
            contents = (await client.read_resource(f"experiture://campaigns/{GLOBEX}/status")).contents
            if (
                not isinstance(contents[0], TextResourceContents)
                or json.loads(contents[0].text)["campaignId"] != GLOBEX
            ):
                raise CheckFailed(f"the status resource through mcp-remote was {contents}")
            prompt = await client.get_prompt("campaign_report", {"campaign_id": GLOBEX})
            if not prompt.messages:
                raise CheckFailed(f"prompts/get campaign_report through mcp-remote answered {prompt}")
    return "tools/list, get_status, a resource read, a prompt"


Group = Callable[[Path, Servers, Snippets], Iterator[str]]  # one client's checks: yields a line per check passed
_say_lock = threading.Lock()


def say(outcome: Outcome, line: str) -> None:
    """Print one check's line as soon as it is known."""
    outcome.lines.append(line)
    with _say_lock:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()


def main() -> int:
    if IN_NETNS:
        bring_up_loopback()
    readme = snippets()
    if sorted(readme) != sorted(SNIPPETS):
        sys.stdout.write(f"FAIL: the README marks the snippets {sorted(readme)}, this check runs {sorted(SNIPPETS)}\n")
        return 1
    groups: list[Group] = [claude, gemini, codex, mcp_remote]
    if only := os.environ.get("CHECK_CLIENTS_ONLY"):  # e.g. "codex,mcp_remote" while working on one client
        groups = [group for group in groups if group.__name__ in only.split(",")]
    with tempfile.TemporaryDirectory(prefix="check-clients-") as tmp:
        root = Path(tmp)
        try:
            with (
                hosted_server(root / "hosted.log", ACCESS_KEY) as url,
                hosted_server(root / "hosted-open.log", None) as open_url,
                hosted_server(root / "hosted-oauth.log", None, oauth=True) as oauth_url,
            ):
                servers = Servers(url, open_url, oauth_url)

                def run_group(group: Group) -> Outcome:
                    outcome = Outcome()
                    try:
                        for line in group(root, servers, readme):
                            say(outcome, f"ok: {line}")
                    except CheckFailed as exc:
                        outcome.failed = True
                        say(outcome, f"FAIL: {group.__name__}: {exc}")
                    except Exception as exc:  # a bug here, or a client's files not as expected: still one FAIL line
                        outcome.failed = True
                        say(outcome, f"FAIL: {group.__name__}: {exc!r}")
                    return outcome

                parallel = int(os.environ.get("CHECK_PARALLEL", "2"))
                with ThreadPoolExecutor(max_workers=parallel) as pool:
                    outcomes = list(pool.map(run_group, groups))
        except CheckFailed as exc:
            sys.stdout.write(f"FAIL: {exc}\n")
            return 1
    return 1 if any(outcome.failed for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
