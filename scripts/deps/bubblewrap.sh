#!/bin/sh
# Install the system packages the sandbox engine needs (Debian/Ubuntu):
#   bubblewrap  - the `bwrap` namespace sandbox that runs Python dynamic workers
#   libseccomp2 - used through ctypes to compile the seccomp BPF filter handed to bwrap
# Idempotent: exits 0 without touching apt when everything is already present.
set -eu

missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
if ! ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; then
    missing="$missing libseccomp2"
fi

if [ -z "$missing" ]; then
    echo "bubblewrap.sh: bwrap and libseccomp already present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "bubblewrap.sh: need root to install:$missing" >&2
        exit 1
    fi
else
    SUDO=""
fi

echo "bubblewrap.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
command -v bwrap >/dev/null 2>&1
echo "bubblewrap.sh: done ($(bwrap --version))"
