"""A loopback stand-in for the Experiture API: answers each campaign id as a test scripts it, records requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Reply = Callable[[], Response]


@dataclass(frozen=True)
class Seen:
    """One request as the API received it."""

    path: str
    headers: dict[str, str]


@dataclass
class ScriptedAPI:
    """Served by the `scripted_server` fixture (base URL `<served.url>/v1`). Unscripted ids get a bare 404."""

    replies: dict[str, Reply] = field(default_factory=dict[str, Reply])
    seen: list[Seen] = field(default_factory=list[Seen])

    def reset(self) -> None:
        self.replies.clear()
        self.seen.clear()

    def script(self, campaign_id: str, reply: Reply) -> str:
        """Answer every endpoint of `campaign_id` with `reply()`; returns the id."""
        self.replies[campaign_id] = reply
        return campaign_id

    @property
    def app(self) -> Starlette:
        async def answer(request: Request) -> Response:
            self.seen.append(Seen(request.url.path, dict(request.headers)))
            parts = request.url.path.split("/")  # "", "v1", "campaigns", id, endpoint
            reply = self.replies.get(parts[3]) if len(parts) == 5 and parts[2] == "campaigns" else None
            return reply() if reply is not None else Response(status_code=404)

        return Starlette(routes=[Route("/{path:path}", answer, methods=["GET"])])


def ok(data: object) -> Reply:
    """A 200 with the API's success envelope around `data`."""
    return lambda: JSONResponse({"success": True, "data": data})
