"""The server answers through an in-memory client in both protocol eras."""

import pytest
from mcp import Client
from mcp.types import TextContent

SPRING = "4130bada-9264-465f-bc0c-a26bebcfcc81"


@pytest.mark.anyio
async def test_get_status_answers_with_text_and_structured_content(client: Client) -> None:
    result = await client.call_tool("get_status", {"campaign_id": SPRING})
    assert not result.is_error
    assert isinstance(result.content[0], TextContent)
    assert result.content[0].text.startswith('Campaign "Spring Re-engagement Direct Mail"')
    assert result.structured_content is not None
    assert result.structured_content["execution"]["state"] == "completed"
