"""What every tool shares: its annotations and the two shapes of CallToolResult it returns."""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, TextContent, ToolAnnotations

from experiture_mcp.logs import redact, redact_any

__all__ = ["READ_ONLY", "error_result", "internal_error_result", "ok_result"]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def ok_result(text: str, structured: dict[str, Any]) -> CallToolResult:
    """The text the model reads and the structured content, both redacted."""
    return CallToolResult(
        content=[TextContent(type="text", text=redact(text))], structured_content=redact_any(structured)
    )


def error_result(text: str) -> CallToolResult:
    """An isError result whose text is exactly `text`, redacted."""
    return CallToolResult(is_error=True, content=[TextContent(type="text", text=redact(text))])


def internal_error_result(subject: str, meanwhile: str = "") -> CallToolResult:
    """What the model reads when a bug of ours broke a call: not its fault, and retrying will not help."""
    return error_result(
        f"{subject}: an internal error in experiture-mcp (logged on the server). "
        f"Retrying will not help; tell the user{meanwhile}."
    )
