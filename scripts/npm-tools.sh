# Sourced by scripts/build-bundle and scripts/check-third-party: puts the pinned npm tools, and a Node they support, on PATH.
# Installed once per set of versions under ~/.cache (EXPERITURE_NPM_TOOLS_DIR overrides); needs only npm and the registry.

MCPB_VERSION=2.1.2          # @anthropic-ai/mcpb: validate and pack the bundle
INSPECTOR_VERSION=2.12.0    # @modelcontextprotocol/inspector: the third-party MCP client (needs Node >= 22.19)
NODE_VERSION=22.23.3        # the `node` npm package: a Node for the Inspector whatever the machine's own Node is

ensure_npm_tools() {
  local root="${EXPERITURE_NPM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/experiture-mcp/npm-tools}"
  local dir="$root/node-$NODE_VERSION-mcpb-$MCPB_VERSION-inspector-$INSPECTOR_VERSION"
  if [ ! -x "$dir/node_modules/.bin/mcp-inspector" ] || ! "$dir/node_modules/.bin/node" --version >/dev/null 2>&1; then
    command -v npm >/dev/null || { echo "npm is needed to install the MCP bundle tools and the Inspector" >&2; return 1; }
    mkdir -p "$root"
    local tmp
    tmp="$(mktemp -d "$root/.install.XXXXXX")"
    # The `node` package fetches its platform's binary in a preinstall script: allow exactly that one.
    printf '{"private": true, "allowScripts": {"node@%s": true}}\n' "$NODE_VERSION" >"$tmp/package.json"
    echo "installing node@$NODE_VERSION @anthropic-ai/mcpb@$MCPB_VERSION @modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
    (cd "$tmp" && npm install --no-save --no-audit --no-fund --loglevel=error \
      "node@$NODE_VERSION" "@anthropic-ai/mcpb@$MCPB_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2)
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
}
