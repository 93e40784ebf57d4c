"""Memory of the campaigns this server has seen, so that the model can ask by name instead of by UUID.

Importing this package is cheap: the database libraries load on first use (store.py), after `initialize`.
"""

from experiture_mcp.memory.entry import Entry, entry_from
from experiture_mcp.memory.service import Found, Memory, MemoryUnavailable

__all__ = ["Entry", "Found", "Memory", "MemoryUnavailable", "entry_from"]
