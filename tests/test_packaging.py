"""Packaging: the manifest matches the live server and pyproject.toml, the bundle starts, README configs parse."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from experiture_mcp import __version__
from experiture_mcp.config import DEFAULT_BASE_URL, Settings
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

ROOT = Path(__file__).resolve().parent.parent
MANIFEST: dict[str, Any] = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SPRING = DEMO_CAMPAIGNS["spring-dm"]
# Stand-ins for prompt arguments, chosen so that they cannot occur in a prompt's own text.
SAMPLE_ARGUMENTS = {
    "campaign_id": "00000000-0000-4000-8000-00000000000a",
    "campaign_ids": "00000000-0000-4000-8000-00000000000b, 00000000-0000-4000-8000-00000000000c",
}
PLACEHOLDER = re.compile(r"\$\{arguments\.([A-Za-z0-9_]+)\}")


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def host_config(unpacked: Path, user_values: dict[str, str | float], *, fill_defaults: bool = True) -> dict[str, Any]:
    """The manifest's mcp_config with its variables substituted as an MCP bundle host substitutes them."""
    # As mcpb's getMcpConfigForManifest: ${__dirname} is the unpacked bundle; ${user_config.X} is the user's value,
    # else the option's default when the host fills defaults; a variable with neither stays as its literal text.
    options: dict[str, Any] = MANIFEST["user_config"]
    values: dict[str, Any] = {k: o["default"] for k, o in options.items() if "default" in o} if fill_defaults else {}
    values |= user_values
    variables = {"__dirname": str(unpacked), "pathSeparator": os.sep, "/": os.sep}
    variables |= {f"user_config.{k}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}

    def substitute(text: str) -> str:
        for name, value in variables.items():
            text = text.replace("${" + name + "}", value)
        return text

    config: dict[str, Any] = MANIFEST["server"]["mcp_config"]
    return {
        "command": substitute(config["command"]),
        "args": [substitute(a) for a in config.get("args", [])],
        "env": {k: substitute(v) for k, v in config.get("env", {}).items()},
    }


@pytest.fixture(scope="session")
def uv() -> str:
    """uv found, or installed, as the README's quick start does: scripts/uv.py (PATH, `python3 -m uv`, private copy)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "uv.py"), "--which"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/uv.py --which failed:\n{done.stderr}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """experiture-mcp.mcpb freshly built from this tree by scripts/build-bundle (the pinned mcpb CLI)."""
    if shutil.which("npm") is None and not os.environ.get("CI"):
        pytest.skip("npm is needed to build the MCP bundle (scripts/build-bundle); CI always has it")
    out = tmp_path_factory.mktemp("bundle") / "experiture-mcp.mcpb"
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-bundle"), str(out)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/build-bundle failed:\n{done.stdout}\n{done.stderr}")
    return out


@pytest.fixture
def unpacked(bundle: Path, tmp_path: Path) -> Iterator[Path]:
    """The bundle unpacked into a fresh folder, as a host installs it."""
    folder = tmp_path / "experiture-mcp"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(folder)
    yield folder


@pytest.mark.anyio
async def test_manifest_declares_exactly_the_live_tools_with_their_descriptions(client: Client) -> None:
    live = {tool.name: one_line(tool.description) for tool in (await client.list_tools()).tools}
    declared = {tool["name"]: tool["description"] for tool in MANIFEST["tools"]}

    assert declared == live
    assert MANIFEST.get("tools_generated", False) is False


@pytest.mark.anyio
async def test_manifest_declares_exactly_the_live_prompts_with_their_arguments(client: Client) -> None:
    live = {
        prompt.name: (one_line(prompt.description), [a.name for a in prompt.arguments or []])
        for prompt in (await client.list_prompts()).prompts
    }
    declared = {prompt["name"]: (prompt["description"], prompt["arguments"]) for prompt in MANIFEST["prompts"]}

    assert declared == live
    assert MANIFEST.get("prompts_generated", False) is False


@pytest.mark.anyio
async def test_manifest_prompt_texts_say_what_the_live_prompts_say(client: Client) -> None:
    for prompt in MANIFEST["prompts"]:
        text: str = prompt["text"]
        assert set(PLACEHOLDER.findall(text)) == set(prompt["arguments"]), prompt["name"]
        arguments = {name: SAMPLE_ARGUMENTS[name] for name in prompt["arguments"]}
        result = await client.get_prompt(prompt["name"], arguments)
        live = "\n\n".join(m.content.text for m in result.messages if isinstance(m.content, TextContent))
        declared = text
        for name, value in arguments.items():
            declared = declared.replace("${arguments." + name + "}", value)
        ids = [i.strip() for value in arguments.values() for i in value.split(",")]

        # Line by line: a line naming the campaigns may word the list differently (a template cannot count the
        # ids); every other line must be the live prompt's own.
        live_lines, declared_lines = live.splitlines(), declared.splitlines()
        assert len(declared_lines) == len(live_lines), prompt["name"]
        for live_line, declared_line in zip(live_lines, declared_lines, strict=True):
            named = [i for i in ids if i in live_line]
            if named:
                assert all(i in declared_line for i in named), (prompt["name"], live_line, declared_line)
            else:
                assert declared_line == live_line, prompt["name"]


@pytest.mark.anyio
async def test_manifest_version_is_the_package_and_the_server_version(client: Client) -> None:
    assert client.server_info is not None
    assert MANIFEST["version"] == PROJECT["version"] == __version__ == client.server_info.version


@pytest.mark.anyio
async def test_changelog_has_an_unreleased_section_and_one_for_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)

    assert versions[:2] == ["Unreleased", PROJECT["version"]]
    assert re.search(
        rf"^## \[{re.escape(PROJECT['version'])}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, flags=re.MULTILINE
    )
    assert f"[{PROJECT['version']}]: {PROJECT['urls']['Repository']}/releases/tag/v{PROJECT['version']}" in changelog


@pytest.mark.anyio
async def test_manifest_metadata_matches_pyproject_and_the_server(client: Client) -> None:
    urls: dict[str, str] = PROJECT["urls"]

    assert MANIFEST["manifest_version"] == "0.4"
    assert MANIFEST["server"]["type"] == "uv"
    assert (ROOT / MANIFEST["server"]["entry_point"]).is_file()
    assert MANIFEST["name"] == PROJECT["name"]
    assert client.server_info is not None and MANIFEST["display_name"] == client.server_info.title
    assert MANIFEST["description"] == PROJECT["description"]
    assert MANIFEST["license"] == PROJECT["license"]
    assert MANIFEST["keywords"] == PROJECT["keywords"]
    assert MANIFEST["author"]["name"] == PROJECT["authors"][0]["name"]
    assert MANIFEST["repository"] == {"type": "git", "url": urls["Repository"]}
    assert (MANIFEST["homepage"], MANIFEST["documentation"], MANIFEST["support"]) == (
        urls["Homepage"],
        urls["Documentation"],
        urls["Issues"],
    )
    # Hosts read runtime ranges with spaces between comparators, where pyproject uses commas.
    assert MANIFEST["compatibility"]["runtimes"]["python"] == PROJECT["requires-python"].replace(",", " ")
    assert sorted(MANIFEST["compatibility"]["platforms"]) == ["darwin", "linux", "win32"]


@pytest.mark.anyio
async def test_icon_is_a_512_pixel_square_png() -> None:
    data = (ROOT / MANIFEST["icon"]).read_bytes()

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (512, 512)
    assert len(data) < 32_000


@pytest.mark.anyio
async def test_token_is_a_required_secret_passed_only_through_the_environment() -> None:
    options: dict[str, Any] = MANIFEST["user_config"]
    config: dict[str, Any] = MANIFEST["server"]["mcp_config"]
    token = options["api_token"]

    assert (token["type"], token["sensitive"], token["required"]) == ("string", True, True)
    assert config["env"]["EXPERITURE_API_TOKEN"] == "${user_config.api_token}"
    assert not any("user_config" in arg for arg in config["args"])  # args show in process listings
    assert all("default" in o for o in options.values() if not o.get("required")), "optional settings need one"
    used = {m for v in config["env"].values() for m in re.findall(r"\$\{user_config\.(\w+)\}", v)}
    assert used == set(options)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("user_values", "fill_defaults", "expected"),
    [
        ({"api_token": "tok-1"}, True, ("tok-1", DEFAULT_BASE_URL, 10.0)),
        (
            {"api_token": "tok-2", "base_url": "https://eu.experiture.example/public/v1/", "timeout_seconds": 30},
            True,
            ("tok-2", "https://eu.experiture.example/public/v1", 30.0),
        ),
        # A host that leaves an optional setting unset passes the literal "${user_config.X}": it means the default.
        ({"api_token": "tok-3"}, False, ("tok-3", DEFAULT_BASE_URL, 10.0)),
    ],
    ids=["defaults", "user-values", "unset-optional-literals"],
)
async def test_host_substituted_environment_gives_the_server_its_settings(
    monkeypatch: pytest.MonkeyPatch,
    user_values: dict[str, str | float],
    fill_defaults: bool,
    expected: tuple[str, str, float],
) -> None:
    env = host_config(Path("/opt/bundle"), user_values, fill_defaults=fill_defaults)["env"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert (settings.token, settings.base_url, settings.timeout_seconds) == expected


@pytest.mark.anyio
async def test_bundle_holds_only_what_the_host_needs(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    package = ROOT / "server" / "experiture_mcp"
    # Every file of the package, the views' HTML, CSS and JS included.
    sources = {p.relative_to(ROOT).as_posix() for p in package.rglob("*") if p.is_file() and p.suffix != ".pyc"}

    assert {n.split("/")[0] for n in names} == {
        "manifest.json",
        "icon.png",
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "LICENSE",
        "server",
    }
    assert sources <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.anyio
async def test_unpacked_bundle_started_from_its_manifest_config_serves_the_tools(
    unpacked: Path, demo_api: str, uv: str
) -> None:
    # The host passes its own environment plus the manifest's env; the timeout is left unset to cover the literal.
    config = host_config(unpacked, {"api_token": DEMO_TOKEN, "base_url": demo_api}, fill_defaults=False)
    assert config["env"]["EXPERITURE_TIMEOUT_SECONDS"] == "${user_config.timeout_seconds}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("EXPERITURE_", "VIRTUAL_ENV", "UV_PROJECT"))}
    # Hosts bring their own uv for a bundle of server.type "uv"; here it is the one the README's quick start gets.
    assert config["command"] == "uv"
    inherited["EXPERITURE_DATA_DIR"] = os.environ["EXPERITURE_DATA_DIR"]  # as the user's own would be
    params = StdioServerParameters(command=uv, args=config["args"], env=inherited | config["env"])

    async with Client(params) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("get_status", {"campaign_id": SPRING})

    assert sorted(tools) == sorted(tool["name"] for tool in MANIFEST["tools"])
    assert not result.is_error, result.content
    assert isinstance(result.content[0], TextContent)
    assert result.content[0].text.startswith('Campaign "Spring Re-engagement Direct Mail"')


@pytest.mark.anyio
async def test_every_json_snippet_in_the_readme_parses_and_keeps_secrets_out_of_arguments_and_urls() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippets = re.findall(r"^```json\n(.*?)^```", readme, flags=re.DOTALL | re.MULTILINE)
    servers: list[dict[str, Any]] = []
    for snippet in snippets:
        config = json.loads(snippet)
        servers += list({**config.get("mcpServers", {}), **config.get("servers", {})}.values())

    proxies = [server for server in servers if any(arg.startswith("mcp-remote@") for arg in server.get("args", []))]
    local = [server for server in servers if "command" in server and server not in proxies]
    hosted = [server for server in servers if "command" not in server]
    for proxy in proxies:  # mcp-remote: the hosted URL, and each header's secret only as a ${…} of its own env
        assert any(arg.startswith("https://") and "token" not in arg.lower() for arg in proxy["args"]), proxy
        headers = [value for name, value in zip(proxy["args"], proxy["args"][1:], strict=False) if name == "--header"]
        assert headers and all("${" in value for value in headers), proxy
    assert len(local) >= 5
    for server in local:  # stdio: our command, the token in the environment, never in the arguments
        assert "experiture-mcp" in server["args"], server
        assert "EXPERITURE_API_TOKEN" in server["env"], server
        assert not any("token" in arg.lower() for arg in server["args"]), server
    for server in hosted:  # streamable HTTP: secrets in headers, filled from the client's variables, never in the URL
        assert server["url"].startswith("https://") and "token" not in server["url"].lower(), server
        assert server["headers"] and all("${" in value for value in server["headers"].values()), server
