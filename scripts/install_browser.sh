#!/usr/bin/env bash
# What tests/browser.rs drives: Debian's chromium (WebGPU on the SwiftShader
# Vulkan it bundles, so no GPU is needed) and the npm package
# playwright-core, pinned by tests/browser/package-lock.json. Installs
# whichever is missing (chromium with apt, playwright-core with `npm ci`);
# quick when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "install chromium (needs root)" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "installing chromium (for the WebGPU browser test)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    command -v npm >/dev/null || { echo "npm is missing (Node.js 20 or newer)" >&2; exit 1; }
    echo "installing playwright-core (npm ci in tests/browser)" >&2
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
fi
