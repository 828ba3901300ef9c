#!/usr/bin/env bash
# Installs Debian's `postgresql` for tests/catalog_postgres.rs. Idempotent. The tests
# run their own server (initdb in a temporary directory, a free loopback port, as the
# `postgres` user since initdb refuses root); a system cluster the package may have
# started is stopped so it holds no port.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi

if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl stop postgresql >/dev/null 2>&1 || true
fi
if command -v service >/dev/null 2>&1; then
    $SUDO service postgresql stop >/dev/null 2>&1 || true
fi

"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version
