.PHONY: help install format lint typecheck test check demo bench bundle third-party clients
# uv as the README's quick start gets it: on PATH, else python3 -m uv, else the private copy scripts/uv.py installs.
UV := $(shell command -v uv 2>/dev/null || python3 scripts/uv.py --which)
export PATH := $(dir $(UV)):$(PATH)
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
install:  ## create .venv from uv.lock
	uv sync --frozen
format:  ## format the code
	uv run --frozen ruff format server tests benchmarks scripts
	uv run --frozen ruff check --fix server tests benchmarks scripts
lint:  ## lint without changing anything
	uv run --frozen ruff format --check server tests benchmarks scripts
	uv run --frozen ruff check server tests benchmarks scripts
typecheck:  ## pyright strict
	uv run --frozen pyright
test:  ## the test suite
	uv run --frozen pytest
check: lint typecheck third-party clients test  ## everything CI runs
bundle:  ## validate manifest.json and pack dist/experiture-mcp.mcpb (installs the pinned npm tools)
	scripts/build-bundle
third-party:  ## mcpb validate/pack, wheel and uvx installs, MCP Inspector CLI over stdio (about 1-2 minutes)
	scripts/check-third-party
clients:  ## the README's snippets in Claude Code, Gemini CLI, Codex and mcp-remote (about 1-2 minutes)
	scripts/check-clients
demo:  ## serve the demo over stdio
	uv run --frozen experiture-mcp --demo
bench:  ## ours next to the SDK floor (about 3 minutes); writes benchmarks/RESULTS.md
	uv run --frozen python -m benchmarks.run
