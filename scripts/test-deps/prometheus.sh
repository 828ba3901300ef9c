#!/usr/bin/env bash
# Installs the Debian package `prometheus` for tests/ingest_remote_write.rs.
# Idempotent. The tests start their own prometheus process; a system instance that the
# package may have started is stopped so it cannot hold ports or confuse anything.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if ! command -v /usr/bin/prometheus >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the lists first: a fresh machine's may be missing or stale.
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
fi

# The package enables and may start prometheus.service; the tests do not use it.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl stop prometheus >/dev/null 2>&1 || true
fi
if command -v service >/dev/null 2>&1; then
    $SUDO service prometheus stop >/dev/null 2>&1 || true
fi

/usr/bin/prometheus --version 2>&1 | head -n 1
