"""`python -m experiture_mcp`: the same as the `experiture-mcp` command."""

import sys

from experiture_mcp.cli import main

sys.exit(main())
