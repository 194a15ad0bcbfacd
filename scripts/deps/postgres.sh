#!/usr/bin/env bash
# The PostgreSQL tests need a server: the one on 127.0.0.1:5432 when it runs, else a
# throwaway cluster that the tests start from local binaries. Install those when missing.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    exit 0
fi
echo "installing PostgreSQL server binaries for the test suite" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
