#!/usr/bin/env bash
# Installs what the project needs and is missing; safe to run again (it skips what is there).
#   uv (from PyPI) -> the workspace's Python dependencies from uv.lock (machine's Python 3.11)
#   FerretDB v1.24.2 and buf, built with the Go toolchain into var/bin/
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/var/bin
FERRETDB_VERSION=v1.24.2
BUF_VERSION=v1.47.2
export UV_PYTHON_DOWNLOADS=never
mkdir -p "$BIN"

log() { printf '\033[1m[install]\033[0m %s\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi

log "python dependencies (uv sync --frozen)"
uv sync --frozen --quiet

# Output captured first: with pipefail, `| grep -q` could fail on the SIGPIPE it causes.
ferretdb_ok() {
  [ -x "$BIN/ferretdb" ] || return 1
  local version
  version=$("$BIN/ferretdb" --version 2>/dev/null) || return 1
  [[ $version == *"version: $FERRETDB_VERSION"* ]]
}
if ! ferretdb_ok; then
  log "FerretDB $FERRETDB_VERSION (go install)"
  GOBIN=$BIN go install "github.com/FerretDB/FerretDB/cmd/ferretdb@$FERRETDB_VERSION" 2>/dev/null || true
  if ! ferretdb_ok; then
    # The module zip lacks build/version/version.txt, so a plain `go install` build panics at
    # start-up (and some proxies refuse the version list `go install` reads for deprecation
    # notices). Build the same module source with the version file written in.
    log "FerretDB $FERRETDB_VERSION (go build from the module source, version file added)"
    src_dir=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    work=$ROOT/var/build/ferretdb-src
    rm -rf "$work" && mkdir -p "$(dirname "$work")" && cp -r "$src_dir" "$work" && chmod -R u+w "$work"
    echo "$FERRETDB_VERSION" > "$work/build/version/version.txt"
    (cd "$work" && go build -o "$BIN/ferretdb" ./cmd/ferretdb)
    rm -rf "$work"
  fi
  ferretdb_ok || { log "FerretDB build failed"; exit 1; }
fi

if ! { [ -x "$BIN/buf" ] && [ "$("$BIN/buf" --version)" = "${BUF_VERSION#v}" ]; }; then
  log "buf $BUF_VERSION (go install)"
  GOBIN=$BIN go install "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
fi
log "ready: FerretDB $FERRETDB_VERSION, buf $("$BIN/buf" --version)"
