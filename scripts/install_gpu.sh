#!/usr/bin/env bash
# A Vulkan device for the gpu backend's tests (tests/gpu.rs and the WPT run
# on gpu): Mesa's lavapipe, a Vulkan implementation on the CPU, from
# Debian's mesa-vulkan-drivers (which brings libvulkan1, the loader).
# Installs it with apt when no Vulkan driver is registered; quick when one
# is (a machine with a real GPU and its driver keeps its own).
set -euo pipefail
shopt -s nullglob
icds=(/usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json)
if [ ${#icds[@]} -gt 0 ] && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    exit 0
fi
"$(dirname "$0")/apt_install.sh" "lavapipe, a Vulkan device for the gpu tests" mesa-vulkan-drivers
