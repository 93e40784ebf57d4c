"""GrantAccessToken: what a verified OAuth access token carries into a tool call (light to import)."""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr

__all__ = ["GrantAccessToken"]


class GrantAccessToken(AccessToken):
    """The SDK's AccessToken plus the grant and its Experiture token, used only towards the Experiture API."""

    grant_id: str
    upstream: SecretStr
    tenant: str  # whose campaign memory: the grant's tenant (consenting again with the same token keeps it)
