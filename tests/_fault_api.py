"""A misbehaving Experiture API on a real loopback socket: raw HTTP/1.1 with faults planned per request."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx2

__all__ = ["FaultAPI", "Request", "Responder", "record_bodies"]


@dataclass
class Request:
    """One request as the fault API received it."""

    path: str
    headers: dict[str, str]


Canned = Mapping[str, tuple[int, bytes]]  # request path -> (status, JSON body)
Responder = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Request, Canned], Awaitable[None]]

_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    writer.write(_head(status, {"Content-Length": str(len(body)), **headers}) + body)
    await writer.drain()


def ok() -> Responder:
    """The recorded answer for the path, or a 404 in the API's envelope."""

    async def respond(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: Request, canned: Canned) -> None:
        status, body = canned.get(req.path, (404, b'{"success":false,"error":{"code":"NOT_FOUND","message":"x"}}'))
        await _send(w, status, body, {"Content-Type": "application/json"})

    return respond


def reply(
    status: int, body: bytes | str | object = b"", content_type: str = "application/json", **headers: str
) -> Responder:
    """A fixed answer; a non-bytes, non-str body is sent as JSON."""
    data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    extra = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}

    async def respond(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: Request, canned: Canned) -> None:
        await _send(w, status, data, extra)

    return respond


def retry_after_date(seconds: float) -> str:
    """A Retry-After value as an HTTP date `seconds` from now."""
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def hang() -> Responder:
    """Read the request and never answer; give up only when the client goes away."""

    async def respond(r: asyncio.StreamReader, w: asyncio.StreamWriter, req: Request, canned: Canned) -> None:
        await r.read()

    return respond


def reset_mid_body() -> Responder:
    """Headers and half the recorded body, then a TCP reset."""

    async def respond(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: Request, canned: Canned) -> None:
        body = canned.get(req.path, (200, b"{}" * 100))[1]
        w.write(_head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}))
        w.write(body[: len(body) // 2])
        await w.drain()
        await asyncio.sleep(0.01)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    return respond


def huge(size: int, *, chunked: bool) -> Responder:
    """`size` bytes of JSON-looking filler, with a Content-Length or chunked; stops when the client leaves."""

    async def respond(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: Request, canned: Canned) -> None:
        block = b" " * 65536
        framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
        w.write(_head(200, {"Content-Type": "application/json", **framing}))
        sent = 0
        while sent < size:
            w.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
            await w.drain()
        if chunked:
            w.write(b"0\r\n\r\n")

    return respond


def drip(interval: float) -> Responder:
    """The recorded answer, one byte every `interval` seconds."""

    async def respond(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: Request, canned: Canned) -> None:
        status, body = canned.get(req.path, (200, b"{}"))
        data = _head(status, {"Content-Type": "application/json", "Content-Length": str(len(body))}) + body
        for i in range(len(data)):
            w.write(data[i : i + 1])
            await w.drain()
            await asyncio.sleep(interval)

    return respond


@dataclass
class _Plan:
    queue: deque[Responder] = field(default_factory=deque[Responder])
    always: Responder | None = None
    chaos: tuple[float, list[tuple[str, Responder]], random.Random] | None = None


class FaultAPI:
    """Serves recorded answers on 127.0.0.1 unless a fault is planned; runs its own event loop in a thread."""

    def __init__(self, canned: Canned) -> None:
        self.canned = canned
        self.requests: list[Request] = []
        self.faults: dict[str, int] = {}  # chaos mode: how often each fault was injected
        self._plan = _Plan()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        """The base URL to configure, like the real API's."""
        return f"http://127.0.0.1:{self.port}/public/v1"

    def __enter__(self) -> FaultAPI:
        self._thread.start()
        self.listen()
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._run(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=5)

    def listen(self) -> None:
        """Accept connections (again) on the same port."""

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

        if self._server is None:
            self._run(start())

    def refuse(self) -> None:
        """Stop listening, so that connections are refused until `listen`."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None

        self._run(stop())

    def plan(self, *responders: Responder) -> None:
        """Answer the next requests with these, in order, then normally."""
        with self._lock:
            self._plan.queue.extend(responders)

    def always(self, responder: Responder) -> None:
        """Answer every request with this until `heal`."""
        with self._lock:
            self._plan.always = responder

    def chaos(self, rate: float, faults: Iterable[tuple[str, Responder]], seed: int = 5) -> None:
        """Answer a random `rate` share of requests with one of the named faults."""
        with self._lock:
            self._plan.chaos = (rate, list(faults), random.Random(seed))

    def heal(self) -> None:
        """Forget every planned fault."""
        with self._lock:
            self._plan = _Plan()

    def _next(self) -> Responder:
        with self._lock:
            plan = self._plan
            if plan.queue:
                return plan.queue.popleft()
            if plan.always is not None:
                return plan.always
            if plan.chaos is not None:
                rate, faults, rng = plan.chaos
                if rng.random() < rate:
                    name, responder = rng.choice(faults)
                    self.faults[name] = self.faults.get(name, 0) + 1
                    return responder
        return ok()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *rest = head.decode("latin-1").split("\r\n")
            target = line.split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
            request = Request(path=target.split("?")[0], headers=headers)
            self.requests.append(request)
            await self._next()(reader, writer, request, self.canned)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def record_bodies(api_base_url: str, token: str, campaign_ids: Iterable[str]) -> dict[str, tuple[int, bytes]]:
    """Real answers of the sandbox API for every endpoint of these campaigns, keyed by request path."""
    canned: dict[str, tuple[int, bytes]] = {}
    with httpx2.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        for cid in campaign_ids:
            for endpoint in ("summary", "status", "metrics"):
                response = http.get(f"{api_base_url}/campaigns/{cid}/{endpoint}")
                canned[response.request.url.path] = (response.status_code, response.content)
    return canned
