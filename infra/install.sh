#!/usr/bin/env bash
# Installs what the project needs and is missing; safe to run again (it skips what is there).
#   uv (from PyPI) -> the workspace's Python dependencies from uv.lock (machine's Python 3.11),
#                     SecantusDB, the embedded database server, among them
#   buf, from its npm package (a prebuilt binary inside the package) into var/tools/
#   the JavaScript the project uses, as locked in infra/js/package-lock.json, into var/js/
#     (GraphiQL's browser files the gateway serves; @apollo/composition, playwright-core)
#   the graphql-ws client (tests/js/graphql-ws/package-lock.json) into var/graphql-ws/
#   with --test: Debian's chromium, for the GraphiQL browser test (apt-get, ~35 s once)
# No Go toolchain, no source builds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/var/bin
TOOLS=$ROOT/var/tools
BUF_VERSION=1.47.2
export UV_PYTHON_DOWNLOADS=never
mkdir -p "$BIN"

log() { printf '\033[1m[install]\033[0m %s\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi

log "python dependencies (uv sync --frozen)"
uv sync --frozen --quiet

buf_ok() { [ -x "$BIN/buf" ] && [ "$("$BIN/buf" --version 2>/dev/null)" = "$BUF_VERSION" ]; }
if ! buf_ok; then
  command -v npm >/dev/null || { log "buf needs npm (Node.js) on the machine"; exit 1; }
  log "buf $BUF_VERSION (npm package @bufbuild/buf)"
  rm -rf "$TOOLS/buf" && mkdir -p "$TOOLS/buf"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/buf" "@bufbuild/buf@$BUF_VERSION" >/dev/null
  ln -sf "$TOOLS/buf/node_modules/@bufbuild/buf-linux-x64/bin/buf" "$BIN/buf"
  buf_ok || { log "buf install failed"; exit 1; }
fi
# npm ci into var/js from the committed lock; redone only when the lock changes.
JS=$ROOT/var/js
if ! cmp -s "$ROOT/infra/js/package-lock.json" "$JS/.installed-lock" || [ ! -d "$JS/node_modules" ]; then
  command -v npm >/dev/null || { log "the JavaScript tools need npm (Node.js) on the machine"; exit 1; }
  log "javascript tools (npm ci from infra/js/package-lock.json into var/js)"
  rm -rf "$JS" && mkdir -p "$JS"
  cp "$ROOT/infra/js/package.json" "$ROOT/infra/js/package-lock.json" "$JS/"
  (cd "$JS" && npm ci --silent --no-audit --no-fund >/dev/null)
  cp "$ROOT/infra/js/package-lock.json" "$JS/.installed-lock"
fi
# The reference graphql-ws client for the subscription test and benchmark (its own folder:
# tests/js/graphql-ws/package-lock.json into var/graphql-ws/, redone when that lock changes).
WS=$ROOT/var/graphql-ws
if ! cmp -s "$ROOT/tests/js/graphql-ws/package-lock.json" "$WS/.installed-lock" || [ ! -d "$WS/node_modules" ]; then
  command -v npm >/dev/null || { log "the graphql-ws client needs npm (Node.js) on the machine"; exit 1; }
  log "graphql-ws client (npm ci from tests/js/graphql-ws/package-lock.json into var/graphql-ws)"
  rm -rf "$WS" && mkdir -p "$WS"
  cp "$ROOT/tests/js/graphql-ws/package.json" "$ROOT/tests/js/graphql-ws/package-lock.json" "$WS/"
  (cd "$WS" && npm ci --silent --no-audit --no-fund >/dev/null)
  cp "$ROOT/tests/js/graphql-ws/package-lock.json" "$WS/.installed-lock"
fi

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  command -v apt-get >/dev/null || { log "the browser test needs Debian's chromium"; exit 1; }
  log "chromium (Debian package, for the GraphiQL browser test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
log "ready: SecantusDB $(uv pip show secantusdb 2>/dev/null | sed -n "s/^Version: //p"), buf $("$BIN/buf" --version)"
