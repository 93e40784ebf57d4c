"""`experiture-mcp oauth add-client|list|revoke|forget|purge` against the database a running OAuth server uses."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy import Table

from _oauth_browser import Browser
from experiture_mcp.cli import main
from experiture_mcp.memory.schema import campaigns, snapshots
from experiture_mcp.oauth.schema import lineages
from experiture_mcp.sandbox import DEMO_TOKEN
from test_oauth_failures import CALLBACK, SECRET_KEY, Hosted, authorize_url, call, pkce, serve


@pytest.fixture
def hosted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosted]:
    monkeypatch.setenv("EXPERITURE_MCP_SECRET_KEY", SECRET_KEY)
    api, app, hosted = serve(tmp_path)
    with api, app:
        yield hosted


def run(capsys: pytest.CaptureFixture[str], hosted: Hosted, *argv: str) -> tuple[int, str, str]:
    code = main(["oauth", *argv, "--data-dir", str(hosted.data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


async def sign_in(hosted: Hosted, client_id: str, secret: str | None) -> dict[str, Any]:
    verifier, challenge = pkce()
    browser = Browser([])
    async with httpx2.AsyncClient(follow_redirects=False) as http:
        page = await browser.open(http, authorize_url(hosted, client_id, challenge))
        assert "Connect Reporting Desk to Experiture" in page.text
        await browser.submit(http, page, hosted.url, "allow", DEMO_TOKEN)
        assert browser.result is not None
        form = {
            "grant_type": "authorization_code",
            "code": browser.result.code,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
            "code_verifier": verifier,
        }
        if secret is not None:
            wrong = await http.post(hosted.url + "/token", data=form | {"client_secret": secret + "x"})
            assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
            missing = await http.post(hosted.url + "/token", data=form)
            assert missing.status_code == 401
            form["client_secret"] = secret
        response = await http.post(hosted.url + "/token", data=form)
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        assert (await call(http, hosted, tokens["access_token"])).status_code == 200
        return tokens


async def status_within(hosted: Hosted, access: str, expected: int, seconds: float = 3.0) -> float:
    """How long until /mcp answers `expected` for this token (another process revoked it)."""
    start = time.monotonic()
    async with httpx2.AsyncClient() as http:
        while (await call(http, hosted, access)).status_code != expected:
            assert time.monotonic() - start < seconds, f"still not {expected} after {seconds} s"
            await anyio.sleep(0.05)
    return time.monotonic() - start


def test_a_static_client_signs_in_with_its_secret_and_is_listed(
    capsys: pytest.CaptureFixture[str], hosted: Hosted
) -> None:
    code, out, _ = run(capsys, hosted, "add-client", "--redirect-uri", CALLBACK, "--name", "Reporting Desk")
    assert code == 0
    client_id = out.split("client_id: ")[1].split()[0]
    secret = out.split("client_secret: ")[1].split()[0]
    assert client_id.startswith("exmcp_client_")

    anyio.run(sign_in, hosted, client_id, secret)

    code, out, _ = run(capsys, hosted, "list")
    assert code == 0 and client_id in out and "static" in out and "Reporting Desk" in out
    assert "1 live grant(s)" in out and DEMO_TOKEN not in out and secret not in out
    code, out, _ = run(capsys, hosted, "list", "--json")
    listed = json.loads(out)
    assert [g["client_id"] for g in listed["grants"]] == [client_id]
    assert listed["grants"][0]["upstream_scopes"] == ["analytics:read", "campaigns:read"]


def test_revoking_from_the_command_line_stops_a_running_servers_tokens_within_a_second(
    capsys: pytest.CaptureFixture[str], hosted: Hosted
) -> None:
    _, out, _ = run(capsys, hosted, "add-client", "--redirect-uri", CALLBACK, "--name", "Reporting Desk", "--public")
    client_id = out.split("client_id: ")[1].split()[0]
    assert "client_secret" not in out
    first = anyio.run(sign_in, hosted, client_id, None)
    second = anyio.run(sign_in, hosted, client_id, None)
    _, out, _ = run(capsys, hosted, "list", "--json")
    grant = json.loads(out)["grants"][-1]["grant_id"]  # oldest last: the first sign-in

    code, out, _ = run(capsys, hosted, "revoke", grant)
    assert (code, out.strip()) == (0, "Ended 1 grant(s).")
    assert anyio.run(status_within, hosted, first["access_token"], 401) < 0.75
    assert anyio.run(status_within, hosted, second["access_token"], 200) < 0.5  # the other grant lives on

    code, out, _ = run(capsys, hosted, "purge", "--all-grants")
    assert code == 0 and "Ended 1 live grant(s)." in out
    anyio.run(status_within, hosted, second["access_token"], 401)
    code, out, err = run(capsys, hosted, "revoke", grant)
    assert code == 1 and f"no live grant {grant}" in err

    code, _, _ = run(capsys, hosted, "revoke", "--client", client_id)
    assert code == 0
    code, out, _ = run(capsys, hosted, "list")
    assert client_id not in out


def test_misuse_is_refused_with_a_fix(
    capsys: pytest.CaptureFixture[str], hosted: Hosted, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, hosted, "revoke")[0] == 2
    assert run(capsys, hosted, "add-client", "--redirect-uri", "not a url")[0] == 2
    monkeypatch.delenv("EXPERITURE_MCP_SECRET_KEY")
    code, _, err = run(capsys, hosted, "list")
    assert code == 2 and "EXPERITURE_MCP_SECRET_KEY is not set" in err


def memories(hosted: Hosted, table: Table = snapshots) -> set[str]:
    """The tenants with rows in one of the memory's tables, read from the real SQLite file."""
    with closing(sqlite3.connect(hosted.data_dir / "memory.sqlite3")) as db:
        return {tenant for (tenant,) in db.execute(f"SELECT DISTINCT tenant FROM {table.name}")}


def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for the server's queued memory writes (they are made off the call's path)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not so after {seconds} s"
        time.sleep(0.05)


def test_forgetting_a_grant_ends_every_grant_sharing_its_memory_and_deletes_that_memory(
    capsys: pytest.CaptureFixture[str], hosted: Hosted
) -> None:
    clients: list[str] = []
    for name in ("Reporting Desk", "Reporting Desk"):
        _, out, _ = run(capsys, hosted, "add-client", "--redirect-uri", CALLBACK, "--name", name, "--public")
        clients.append(out.split("client_id: ")[1].split()[0])
    first = anyio.run(sign_in, hosted, clients[0], None)  # each sign-in makes a call: memory and a snapshot
    second = anyio.run(sign_in, hosted, clients[0], None)  # the same client and token: the same memory
    other = anyio.run(sign_in, hosted, clients[1], None)  # another client: a memory of its own
    until(lambda: len(memories(hosted)) == 2 and len(memories(hosted, campaigns)) == 2)
    _, out, _ = run(capsys, hosted, "list", "--json")
    listed = {g["client_id"]: g for g in reversed(json.loads(out)["grants"])}  # oldest first: the first grant wins
    assert all(g["remembered_campaigns"] == 1 for g in listed.values())
    _, out, _ = run(capsys, hosted, "list")
    assert out.count("memory: 1 campaign(s)") == 3
    before = memories(hosted)

    code, out, err = run(capsys, hosted, "forget", listed[clients[0]]["grant_id"])
    assert (code, err) == (0, "")
    assert out.strip() == (
        "Ended 2 grant(s) and forgot 1 remembered campaign(s) with their history; signing in again starts a new memory."
    )
    assert anyio.run(status_within, hosted, first["access_token"], 401) < 0.75
    assert anyio.run(status_within, hosted, second["access_token"], 401) < 0.75
    assert anyio.run(status_within, hosted, other["access_token"], 200) < 0.5  # the other client's memory lives on
    kept = memories(hosted)
    assert len(kept) == 1 and kept < before and memories(hosted, campaigns) == kept
    assert memories(hosted, lineages) == kept  # the forgotten lineage goes: no later grant continues it

    anyio.run(sign_in, hosted, clients[0], None)  # the same client and token again: a new memory
    until(lambda: len(memories(hosted)) == 2)
    assert memories(hosted) & before == kept

    again = listed[clients[0]]["grant_id"]  # ended, its row not yet swept: forgetting it again finds nothing left
    assert run(capsys, hosted, "forget", again)[:2] == (
        0,
        "Ended 0 grant(s) and forgot 0 remembered campaign(s) "
        "with their history; signing in again starts a new memory.\n",
    )
    code, _, err = run(capsys, hosted, "forget", "no-such-grant")
    assert code == 1 and "no grant no-such-grant" in err
