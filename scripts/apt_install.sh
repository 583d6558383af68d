#!/usr/bin/env bash
# Installs Debian packages with apt-get (through sudo when not root): the
# shared step of scripts/install_cross.sh, install_gpu.sh and
# install_browser.sh.   scripts/apt_install.sh WHY PACKAGE...
set -euo pipefail
why="$1"
shift
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install $* (needs root)" >&2; exit 1; }
    sudo="sudo"
fi
echo "installing $* ($why)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
