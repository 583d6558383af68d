#!/usr/bin/env bash
# What tests/browser.rs drives: Debian's chromium (WebGPU on the SwiftShader
# Vulkan it bundles, so no GPU is needed) and the npm package
# playwright-core, pinned by tests/browser/package-lock.json. Installs
# whichever is missing (chromium with apt, playwright-core with `npm ci`);
# quick when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
    scripts/apt_install.sh "for the WebGPU browser test" chromium
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    command -v npm >/dev/null || { echo "npm is missing (Node.js 20 or newer)" >&2; exit 1; }
    echo "installing playwright-core (npm ci in tests/browser)" >&2
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
fi
