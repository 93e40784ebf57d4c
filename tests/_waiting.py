"""What the wait_for_run tests share: an accelerated clock, the demo API under it, one call with its progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

from conftest import Instrumented, ServedApp, text_of
from experiture_mcp.sandbox import create_app

Progress = tuple[float, float | None, str | None]


class Accelerated:
    """A clock from `start` running `speed` times faster than real time, shared by the demo API and the server."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed, self.began = start, speed, time.monotonic()

    def restart(self) -> None:
        """Back to `start`, now: servers take a while to come up."""
        self.began = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.began) * self.speed)


@contextmanager
def demo(clock: Callable[[], datetime]) -> Generator[tuple[Instrumented, str]]:
    """The demo API on loopback under `clock`, counting requests, and its base URL."""
    app = Instrumented(create_app(clock=clock))
    with ServedApp(app) as served:
        yield app, served.url + "/public/v1"


async def wait(
    client: Client, campaign_id: str, timeout: float | None = None, seen: list[Progress] | None = None
) -> CallToolResult:
    arguments: dict[str, Any] = {"campaign_id": campaign_id}
    if timeout is not None:
        arguments["timeout_seconds"] = timeout

    async def record(progress: float, total: float | None, message: str | None) -> None:
        if seen is not None:
            seen.append((progress, total, message))

    return await client.call_tool("wait_for_run", arguments, progress_callback=record)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content
