#!/usr/bin/env bash
# The main job: installs (unless node_modules is current), builds, starts the server on its
# embedded database and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/npm-ci-if-needed.sh
npm start -- "$@"
