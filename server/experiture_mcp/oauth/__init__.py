"""OAuth sign-in for hosted mode: an authorization server on the MCP server's origin, grants kept encrypted."""
