"""Memory through the real MCP client in both eras: found by name in the next server, ambiguity, tenants, faults."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PromptReference, ResourceTemplateReference
from pydantic import SecretStr

from _snapshot import assert_snapshot
from conftest import NOW, ServedApp, connect, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.hosted import MCP_PATH, build_app
from experiture_mcp.memory import Entry, Memory
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, TENANT_B_CAMPAIGNS, TENANT_B_TOKEN

SPRING = DEMO_CAMPAIGNS["spring-dm"]
FALL = DEMO_CAMPAIGNS["fall-catalog-dm"]
WINTER = TENANT_B_CAMPAIGNS["winter-sale"]
STATUS = "experiture://campaigns/{campaign_id}/status"


async def find(client: Client, query: str, **options: Any) -> tuple[str, dict[str, Any]]:
    result = await client.call_tool("find_campaigns", {"query": query, **options})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return text_of(result), result.structured_content


async def look_up(client: Client, *campaign_ids: str) -> None:
    for cid in campaign_ids:
        result = await client.call_tool("get_status", {"campaign_id": cid})
        assert not result.is_error, text_of(result)


@pytest.mark.anyio
async def test_a_campaign_looked_up_in_one_server_is_found_by_name_in_the_next(settings: Settings, era: str) -> None:
    async with connect(settings, era) as first:
        text, found = await find(first, "spring mailing")
        assert found["candidates"] == [] and found["remembered"] == 0
        assert_snapshot("memory/nothing_remembered", text)
        await look_up(first, SPRING, FALL)

    async with connect(settings, era) as second:  # a new server process would open the same file
        for query in ("spring mailing", "re-engagment spring", "SPRING DM", "Spring Ré-engagement"):
            text, found = await find(second, query)
            best = found["candidates"][0]
            assert (best["campaignId"], found["ambiguous"]) == (SPRING, False), query
        assert best["name"] == "Spring Re-engagement Direct Mail"
        assert best["state"] == "completed"
        assert best["channel"] == "direct_mail"
        assert_snapshot("memory/found_spring", text)

        _, none = await find(second, "tokyo flagship")
        assert none["candidates"] == [] and none["remembered"] == 2


@pytest.mark.anyio
async def test_a_near_tie_is_called_ambiguous_and_the_model_is_told_to_ask(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        await look_up(client, SPRING, FALL)
        text, found = await find(client, "direct mail")

    assert found["ambiguous"] is True
    assert {c["campaignId"] for c in found["candidates"]} == {SPRING, FALL}
    assert "Ask the user which one they mean" in text
    assert_snapshot("memory/ambiguous", text)


@pytest.mark.anyio
async def test_filters_and_limit_narrow_the_candidates(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        for cid in DEMO_CAMPAIGNS.values():  # summaries give channels (one is a journey, which fails), overview states
            await client.call_tool("get_summary", {"campaign_id": cid})
        assert not (await client.call_tool("get_overview", {"campaign_ids": list(DEMO_CAMPAIGNS.values())})).is_error
        _, failed = await find(client, "email", state="failed")
        _, sms = await find(client, "sale", channel="sms")
        _, one = await find(client, "campaign email", limit=1)
        refused = await client.call_tool("find_campaigns", {"query": "x", "limit": 51})

    assert [c["name"] for c in failed["candidates"]] == ["Lapsed Customer Win-back"]
    assert [c["name"] for c in sms["candidates"]] == ["Weekend Flash Sale SMS"]
    assert len(one["candidates"]) == 1
    assert refused.is_error


@pytest.mark.anyio
async def test_get_overview_without_ids_covers_the_remembered_campaigns(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        await look_up(client, SPRING, FALL)
        result = await client.call_tool("get_overview", {})

    assert not result.is_error
    assert result.structured_content is not None
    assert {r["campaignId"] for r in result.structured_content["rows"]} == {SPRING, FALL}
    assert "No ids were given: this covers all 2 remembered campaigns." in text_of(result)


@pytest.mark.anyio
async def test_resources_list_and_completion_offer_the_remembered_campaigns(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        await look_up(client, SPRING)
        assert not (await client.call_tool("get_summary", {"campaign_id": FALL})).is_error  # no status read yet
        listed = {str(r.uri): r.title for r in (await client.list_resources()).resources}
        completed = await client.complete(ResourceTemplateReference(uri=STATUS), {"name": "campaign_id", "value": "41"})
        prompt = await client.complete(PromptReference(name="compare_campaigns"), {"name": "campaign_ids", "value": ""})

    assert listed[STATUS.format(campaign_id=SPRING)] == "Spring Re-engagement Direct Mail"
    assert STATUS.format(campaign_id=FALL) not in listed  # listed once its status has been read
    assert completed.completion.values == [SPRING]
    assert set(prompt.completion.values) == {SPRING, FALL}


@pytest.mark.anyio
async def test_memory_off_stores_nothing_and_says_how_to_turn_it_on(settings: Settings, era: str) -> None:
    off = settings.model_copy(update={"memory": False})
    async with connect(off, era) as client:
        await look_up(client, SPRING)
        result = await client.call_tool("find_campaigns", {"query": "spring"})
        overview = await client.call_tool("get_overview", {})

    assert result.is_error and overview.is_error
    assert "EXPERITURE_MEMORY=off" in text_of(result)
    assert_snapshot("memory/off", text_of(result))
    assert not list(Path(os.environ["EXPERITURE_DATA_DIR"]).glob("*.sqlite3"))


@pytest.mark.anyio
async def test_tenants_interleaved_over_stdio_never_see_each_other(demo_api: str, tmp_path: Path) -> None:
    def params(token: str) -> StdioServerParameters:
        env = {"EXPERITURE_API_TOKEN": token, "EXPERITURE_BASE_URL": demo_api, "EXPERITURE_DATA_DIR": str(tmp_path)}
        return StdioServerParameters(command=sys.executable, args=["-m", "experiture_mcp"], env=env)

    with (tmp_path / "stderr.txt").open("w") as errlog:
        async with (
            Client(stdio_client(params(DEMO_TOKEN), errlog=errlog)) as acme,
            Client(stdio_client(params(TENANT_B_TOKEN), errlog=errlog)) as globex,
        ):
            await look_up(acme, SPRING)
            await look_up(globex, WINTER)
            await look_up(acme, DEMO_CAMPAIGNS["summer-email"])
            _, acme_sale = await find(acme, "winter sale")
            _, globex_sale = await find(globex, "winter sale")
            _, globex_spring = await find(globex, "spring")
            acme_resources = {str(r.uri) for r in (await acme.list_resources()).resources}

    assert acme_sale["candidates"] == [] and acme_sale["remembered"] == 2
    assert [c["campaignId"] for c in globex_sale["candidates"]] == [WINTER]
    assert globex_spring["candidates"] == []
    assert STATUS.format(campaign_id=WINTER) not in acme_resources
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("memory.sqlite3*"))
    assert b"Winter Sale" in raw  # the file holds the names, so the next line checks something
    assert DEMO_TOKEN.encode() not in raw and TENANT_B_TOKEN.encode() not in raw


@asynccontextmanager
async def over_http(url: str, era: str, token: str) -> AsyncGenerator[Client]:
    async with (
        httpx2.AsyncClient(headers={"X-Experiture-Token": token}) as http,
        Client(streamable_http_client(url + MCP_PATH, http_client=http), mode=era) as client,  # type: ignore[arg-type]
    ):
        yield client


@pytest.mark.anyio
async def test_tenants_interleaved_over_http_each_get_their_own_namespace(demo_api: str, era: str) -> None:
    app = build_app(Settings(base_url=demo_api), clock=frozen_clock)  # no configured token: each caller brings one
    with ServedApp(app, lifespan="on") as served:
        async with over_http(served.url, era, DEMO_TOKEN) as acme, over_http(served.url, era, TENANT_B_TOKEN) as globex:
            await look_up(acme, SPRING)
            await look_up(globex, WINTER)
            await look_up(acme, FALL)
            _, acme_found = await find(acme, "sale")
            _, globex_found = await find(globex, "winter sale")
            acme_ids = {str(r.uri) for r in (await acme.list_resources()).resources}
            globex_done = await globex.complete(
                ResourceTemplateReference(uri=STATUS), {"name": "campaign_id", "value": ""}
            )

    assert acme_found["remembered"] == 2 and WINTER not in str(acme_found)
    assert [c["campaignId"] for c in globex_found["candidates"]] == [WINTER]
    assert STATUS.format(campaign_id=SPRING) in acme_ids and STATUS.format(campaign_id=WINTER) not in acme_ids
    assert globex_done.completion.values == [WINTER]


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["corrupt", "unreadable", "locked"])
async def test_a_broken_memory_file_never_stops_a_campaign_tool(
    settings: Settings, era: str, fault: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "broken"
    data.mkdir()
    path = data / "memory.sqlite3"
    holder: sqlite3.Connection | None = None
    if fault == "corrupt":
        path.write_bytes(b"this is not a database, just text " * 200)
    elif fault == "unreadable":
        if os.geteuid() == 0:
            data.rmdir()
            data.write_text("a file where the data directory should be")  # root ignores permissions, not this
        else:
            data.chmod(0o500)
    else:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("CREATE TABLE held (x)")
        holder.execute("BEGIN EXCLUSIVE")
    broken = settings.model_copy(update={"data_dir": data})
    caplog.set_level(logging.WARNING, "experiture_mcp.memory")
    try:
        async with connect(broken, era) as client:
            status = await client.call_tool("get_status", {"campaign_id": SPRING})
            first = await client.call_tool("find_campaigns", {"query": "spring"})
            second = await client.call_tool("find_campaigns", {"query": "spring"})
    finally:
        if holder is not None:
            holder.close()
        if fault == "unreadable" and os.geteuid() != 0:
            data.chmod(0o700)

    assert not status.is_error
    assert first.is_error and second.is_error
    expected = {"corrupt": "is damaged", "unreadable": "cannot be read or written", "locked": "is locked"}[fault]
    assert expected in text_of(first)
    assert text_of(first).startswith("find_campaigns cannot search: ")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert_snapshot(f"memory/fault_{fault}", text_of(first).replace(str(data), "DATA_DIR"))


@pytest.mark.anyio
async def test_an_unreachable_postgresql_never_stops_a_campaign_tool(settings: Settings, era: str) -> None:
    from conftest import free_port

    url = f"postgresql://experiture:secret-password@127.0.0.1:{free_port()}/memory"
    unreachable = settings.model_copy(update={"database_url": SecretStr(url)})
    async with connect(unreachable, era) as client:
        status = await client.call_tool("get_status", {"campaign_id": SPRING})
        found = await client.call_tool("find_campaigns", {"query": "spring"})

    assert not status.is_error
    assert found.is_error
    assert "cannot be reached" in text_of(found) and "EXPERITURE_DATABASE_URL" in text_of(found)
    assert "secret-password" not in text_of(found)


@pytest.mark.anyio
async def test_both_backends_answer_the_same_search(settings: Settings, era: str, database_url: str) -> None:
    backend = settings.model_copy(update={"database_url": SecretStr(database_url)})
    async with connect(backend, era) as client:
        await look_up(client, SPRING, FALL, DEMO_CAMPAIGNS["summer-email"])
    async with connect(backend, era) as client:
        _, found = await find(client, "spring mailing")

    assert [c["campaignId"] for c in found["candidates"]][:1] == [SPRING]
    assert found["remembered"] == 3


@pytest.mark.anyio
async def test_the_demo_remembers_its_own_campaigns_from_the_start(era: str) -> None:
    from experiture_mcp.cli import _demo_transport, _parser, _settings  # pyright: ignore[reportPrivateUsage]
    from experiture_mcp.server import build_server

    demo = _settings(_parser().parse_args(["--demo"]))
    async with Client(build_server(demo, transport=_demo_transport(demo), clock=frozen_clock), mode=era) as client:  # type: ignore[arg-type]
        await look_up(client, SPRING)  # a lookup before any search: the demo still remembers all its campaigns
    async with Client(build_server(demo, transport=_demo_transport(demo), clock=frozen_clock), mode=era) as client:  # type: ignore[arg-type]
        text, found = await find(client, "spring mailing")

    assert found["candidates"][0]["campaignId"] == SPRING
    assert found["remembered"] == len(DEMO_CAMPAIGNS) - 1  # all but the one the summary endpoint cannot describe
    assert "Spring Re-engagement Direct Mail" in text


@pytest.mark.anyio
async def test_memory_keeps_no_token_and_forget_empties_a_tenant(tmp_path: Path) -> None:
    memory = Memory(Settings(data_dir=tmp_path), frozen_clock)
    try:
        await memory.remember(DEMO_TOKEN, [Entry(SPRING, name="Spring")])
        await memory.remember(TENANT_B_TOKEN, [Entry(WINTER, name="Winter")])
        assert await memory.forget(DEMO_TOKEN, None) == 1
        assert await memory.entries(DEMO_TOKEN) == []
        assert [e.name for e in await memory.entries(TENANT_B_TOKEN)] == ["Winter"]
    finally:
        await memory.aclose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("memory.sqlite3*"))
    assert DEMO_TOKEN.encode() not in raw and TENANT_B_TOKEN.encode() not in raw


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tiny tmpfs that is already full (mounting needs root, as in CI)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a small tmpfs, which only root can mount")
    where = tmp_path / "full"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with contextlib.suppress(OSError), (where / "filler").open("wb", buffering=0) as filler:
            while True:
                filler.write(b"\0" * 4096)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.anyio
async def test_a_full_disk_never_stops_a_campaign_tool(settings: Settings, era: str, full_disk: Path) -> None:
    full = settings.model_copy(update={"data_dir": full_disk})
    async with connect(full, era) as client:
        status = await client.call_tool("get_status", {"campaign_id": SPRING})
        found = await client.call_tool("find_campaigns", {"query": "spring"})

    assert not status.is_error
    assert found.is_error
    assert "is full" in text_of(found) and "Free some space" in text_of(found)


@pytest.mark.anyio
async def test_a_resource_read_is_remembered_too(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        await client.read_resource(f"experiture://campaigns/{FALL}/summary")
        _, found = await find(client, "fall catalog")

    assert [c["campaignId"] for c in found["candidates"]] == [FALL]
    assert found["candidates"][0]["channel"] == "direct_mail"


@pytest.mark.anyio
async def test_get_overview_without_ids_says_how_many_were_left_out(settings: Settings, era: str) -> None:
    memory = Memory(settings, lambda: NOW - timedelta(days=1))  # seen a day before the server's frozen clock
    try:
        await memory.remember(DEMO_TOKEN, [Entry(f"{i:08x}-0000-4000-8000-000000000000") for i in range(54)])
    finally:
        await memory.aclose()
    async with connect(settings, era) as client:
        await look_up(client, SPRING)  # the most recently seen comes first
        result = await client.call_tool("get_overview", {"campaign_ids": []})

    assert result.structured_content is not None
    rows = result.structured_content["rows"]
    assert len(rows) == 50 and SPRING in {r["campaignId"] for r in rows}
    assert "the 50 most recently seen of 55 remembered campaigns; 5 were left out" in text_of(result)
    assert "find_campaigns" in text_of(result)
