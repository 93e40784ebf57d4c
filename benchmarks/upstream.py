"""The demo API served by uvicorn on 127.0.0.1 in its own process, counting the TCP connections it accepts."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import time
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from typing import Any

__all__ = ["Upstream"]


def _serve(port: int, accepted: Synchronized[int], frozen_at: datetime | None) -> None:
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from experiture_mcp.sandbox import create_app

    class CountingProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            with accepted.get_lock():
                accepted.value += 1
            super().connection_made(transport)

    config = uvicorn.Config(
        create_app(clock=(lambda: frozen_at) if frozen_at is not None else None),
        host="127.0.0.1",
        port=port,
        http=CountingProtocol,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=75,  # like a typical API behind a load balancer: idle pooled connections stay open
    )
    uvicorn.Server(config).run()


class Upstream:
    """`with Upstream() as api:` serves the demo API at `api.base_url`; `api.connections` counts accepted ones."""

    def __init__(self, frozen_at: datetime | None = None) -> None:
        """`frozen_at`: the demo's clock stands still there (its running push never finishes)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        ctx = multiprocessing.get_context("spawn")
        self._accepted: Synchronized[int] = ctx.Value("q", 0)
        self._process: Any = ctx.Process(target=_serve, args=(self.port, self._accepted, frozen_at), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/public/v1"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return int(self._accepted.value)

    def __enter__(self) -> Upstream:
        self._process.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or not self._process.is_alive():
                    raise RuntimeError("the demo API did not start") from None
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(timeout=10)
