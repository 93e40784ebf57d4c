"""MCP server for Experiture campaigns (public API v1: summary, status, metrics)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("experiture-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
