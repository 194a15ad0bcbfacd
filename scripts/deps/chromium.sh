#!/bin/sh
# Install Debian's Chromium for the browser tests (tests/e2e/ui, Playwright for Python).
# Playwright's own browser download (`playwright install`) is deliberately not used: the
# tests must not depend on a network download beyond the OS package manager, and the
# Debian package gets security updates with the rest of the system.
# Idempotent: exits 0 without touching apt when /usr/bin/chromium is already present.
set -eu

if [ -x /usr/bin/chromium ]; then
    echo "chromium.sh: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "chromium.sh: need root to install chromium" >&2
        exit 1
    fi
else
    SUDO=""
fi

echo "chromium.sh: installing chromium"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
test -x /usr/bin/chromium
echo "chromium.sh: done ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
