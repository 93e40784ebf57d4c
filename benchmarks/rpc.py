"""Thin JSON-RPC clients for MCP over stdio and streamable HTTP, light enough not to be the bottleneck."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2

__all__ = [
    "MODERN_VERSION",
    "PROTOCOL_VERSION",
    "HttpSession",
    "RpcError",
    "StdioSession",
    "base_env",
    "cpu_seconds",
    "hosted_server",
]

PROTOCOL_VERSION = "2025-11-25"  # the era most hosts speak today: initialize, then requests
MODERN_VERSION = "2026-07-28"  # every request carries its own envelope in params._meta and routing headers
INITIALIZE = {
    "protocolVersion": PROTOCOL_VERSION,
    "capabilities": {},
    "clientInfo": {"name": "experiture-mcp-benchmarks", "version": "1"},
}
Json = dict[str, Any]


class RpcError(RuntimeError):
    """The server answered a request with a JSON-RPC error."""


def _result(message: Json) -> Json:
    if "error" in message:
        raise RpcError(json.dumps(message["error"]))
    result: Json = message["result"]
    return result


class StdioSession:
    """One server subprocess spoken to over stdin/stdout; requests may be in flight concurrently."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> float:
        """Spawn the server and initialize; returns the seconds from spawn until the initialize response."""
        started = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=self.env,
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        await self.request("initialize", INITIALIZE)
        elapsed = time.perf_counter() - started
        await self.notify("notifications/initialized")
        return elapsed

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._pending.values():
            future.set_exception(RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}"))

    async def _send(self, message: Json) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await self.proc.stdin.drain()

    async def request(self, method: str, params: Json | None = None) -> Json:
        """Send one request and wait for its result."""
        ident = next(self._ids)
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params or {}})
        return _result(await future)

    async def notify(self, method: str, params: Json | None = None) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, "params": params or {}})

    async def call_tool(self, name: str, arguments: Json) -> Json:
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    def rss_kib(self) -> int:
        """Resident set size of the server process, from /proc."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


class HttpSession:
    """Streamable HTTP (stateless; JSON or event-stream answers) over one pooled httpx2 client, in either era."""

    def __init__(self, url: str, access_key: str | None = None, version: str = PROTOCOL_VERSION) -> None:
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": version,
        }
        self.version = version
        self.content_type = ""  # of the latest answer
        if access_key:
            headers["Authorization"] = f"Bearer {access_key}"
        self.url = url
        self._ids = itertools.count(1)
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        self._http = httpx2.AsyncClient(headers=headers, limits=limits, timeout=30.0)

    async def request(self, method: str, params: Json | None = None) -> Json:
        params = dict(params or {})
        headers: dict[str, str] = {}
        if self.version == MODERN_VERSION:
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            headers["Mcp-Method"] = method
            if method == "tools/call":
                headers["Mcp-Name"] = str(params["name"])
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        response = await self._http.post(self.url, json=body, headers=headers)
        response.raise_for_status()
        self.content_type = response.headers.get("content-type", "").split(";")[0]
        if self.content_type == "text/event-stream":
            data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
            return _result(json.loads(data[-1]))
        return _result(response.json())

    async def call_tool(self, name: str, arguments: Json) -> Json:
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    async def close(self) -> None:
        await self._http.aclose()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def base_env(**extra: str) -> dict[str, str]:
    """The parent's environment without our settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPERITURE_", "FLOOR_"))}
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def hosted_server(
    args: list[str], env: dict[str, str], log: Path, stop_seconds: float = 15
) -> Generator[subprocess.Popen[bytes]]:
    """`experiture-mcp --transport http ARGS`, its stderr in `log`, stopped with SIGINT at the end (as an operator's
    Ctrl-C) and killed if it is still there after `stop_seconds`."""
    argv = [sys.executable, "-m", "experiture_mcp", "--transport", "http", *args]
    with log.open("w") as err:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=stop_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
