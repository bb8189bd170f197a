#!/bin/sh
# clpctl is one bundled JavaScript file; it needs Node.js 24 or later and nothing else.
exec /usr/bin/node /usr/lib/core-livepatch/clpctl.mjs "$@"
