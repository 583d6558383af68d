#!/usr/bin/env bash
# The tools tests/aot.rs links and runs aarch64 artifacts with: the Debian
# cross compiler (gcc-aarch64-linux-gnu) and qemu-user (qemu-aarch64).
# Installs them with apt when missing; quick when present.
set -euo pipefail
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
    exit 0
fi
"$(dirname "$0")/apt_install.sh" "for the aarch64 AOT tests" gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
