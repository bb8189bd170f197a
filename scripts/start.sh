#!/usr/bin/env bash
# The main job: installs, builds, starts the server on its embedded database and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm start -- "$@"
