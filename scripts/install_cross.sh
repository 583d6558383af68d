#!/usr/bin/env bash
# The tools tests/aot.rs links and runs aarch64 artifacts with: the Debian
# cross compiler (gcc-aarch64-linux-gnu) and qemu-user (qemu-aarch64).
# Installs them with apt when missing; quick when present.
set -euo pipefail
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install gcc-aarch64-linux-gnu and qemu-user (needs root)" >&2; exit 1; }
    sudo="sudo"
fi
echo "installing gcc-aarch64-linux-gnu and qemu-user (for the aarch64 AOT tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
