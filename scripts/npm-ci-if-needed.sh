#!/usr/bin/env bash
# Runs `npm ci` unless node_modules was installed from this very package-lock.json: a second
# `scripts/start.sh` then starts in seconds instead of reinstalling every package.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.clp-package-lock.sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x node_modules/.bin/node ]; then
  echo "node_modules matches package-lock.json: npm ci skipped (delete node_modules to reinstall)"
  exit 0
fi
# The system's Node only runs npm; npm's EBADENGINE warning about core-livepatch (it needs Node 24)
# would otherwise read as a failure to someone seeing it for the first time.
system_node=$(node --version 2>/dev/null || echo "none")
case "$system_node" in
  v24.*) ;;
  *) echo "npm ci runs on this system's Node ($system_node); the project then runs on the Node 24 it installs (node_modules/.bin/node), so npm's EBADENGINE warning about core-livepatch is expected" ;;
esac
npm ci --no-audit --no-fund
# npm ci empties node_modules first, so a stamp left from another lock file never survives it.
echo "$wanted" > "$stamp"
