#!/bin/sh
# Installs Debian's chromium (and its driver) for the headless browser test of the web page.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (or sudo).
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation
/usr/bin/chromium --version
