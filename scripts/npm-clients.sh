# shellcheck shell=bash
# Sourced by scripts/check-clients: puts the pinned third-party MCP clients, and a Node they all support, on PATH.
# Installed once per set of versions under ~/.cache (EXPERITURE_NPM_TOOLS_DIR overrides), as scripts/npm-tools.sh
# installs the Inspector; needs only npm and the registry. Versions picked with `npm view PKG version`.

CLAUDE_CODE_VERSION=2.1.332 # @anthropic-ai/claude-code: `claude mcp add/list`, project .mcp.json (needs Node >= 22)
GEMINI_CLI_VERSION=0.61.0   # @google/gemini-cli: `gemini mcp add/list`
CODEX_VERSION=0.171.0       # @openai/codex: `codex mcp add`, `codex app-server` (a native binary per platform)
MCP_REMOTE_VERSION=0.15.1   # mcp-remote: a stdio proxy in front of a remote streamable HTTP server
CLIENTS_NODE_VERSION=22.23.3 # the `node` npm package: NODE_VERSION of scripts/npm-tools.sh, keep them in step

clients_dir() {
  local root="${EXPERITURE_NPM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/experiture-mcp/npm-tools}"
  echo "$root/clients-node-$CLIENTS_NODE_VERSION-claude-$CLAUDE_CODE_VERSION-gemini-$GEMINI_CLI_VERSION-codex-$CODEX_VERSION-mcp-remote-$MCP_REMOTE_VERSION"
}

ensure_npm_clients() {
  local dir
  dir="$(clients_dir)"
  local bin="$dir/node_modules/.bin"
  if [ ! -x "$bin/claude" ] || [ ! -x "$bin/gemini" ] || [ ! -x "$bin/codex" ] || [ ! -x "$bin/mcp-remote" ] ||
    ! "$bin/node" --version >/dev/null 2>&1; then
    command -v npm >/dev/null || { echo "npm is needed to install the third-party MCP clients" >&2; return 1; }
    mkdir -p "$(dirname "$dir")"
    local tmp
    tmp="$(mktemp -d "$(dirname "$dir")/.install.XXXXXX")"
    # Install scripts allowed: the `node` package's binary download and Claude Code's link to its native binary.
    printf '{"private": true, "allowScripts": {"node@%s": true, "@anthropic-ai/claude-code@%s": true}}\n' \
      "$CLIENTS_NODE_VERSION" "$CLAUDE_CODE_VERSION" >"$tmp/package.json"
    local pkgs=("node@$CLIENTS_NODE_VERSION" "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
      "@google/gemini-cli@$GEMINI_CLI_VERSION" "@openai/codex@$CODEX_VERSION" "mcp-remote@$MCP_REMOTE_VERSION")
    echo "installing ${pkgs[*]}" >&2
    (cd "$tmp" && npm install --no-save --no-audit --no-fund --loglevel=error "${pkgs[@]}" >&2) || {
      rm -rf "$tmp"
      return 1
    }
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  export PATH="$bin:$PATH"
}
