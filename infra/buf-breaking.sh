#!/usr/bin/env bash
# buf breaking against the previous commit's contracts; skipped when there is none to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=$PWD/var/bin/buf
if ! git rev-parse --verify --quiet HEAD~1 >/dev/null; then
  echo "buf breaking: no previous commit to compare with; skipped"
  exit 0
fi
if ! git cat-file -e HEAD~1:proto/buf.yaml 2>/dev/null; then
  echo "buf breaking: the previous commit has no proto/ module; skipped"
  exit 0
fi
"$BUF" breaking proto --against ".git#ref=HEAD~1,subdir=proto"
echo "buf breaking: no breaking change against HEAD~1"
