#!/usr/bin/env bash
# Installs python-logging-loki, the Loki client used by tests/ingest_loki.rs (idempotent).
set -euo pipefail
if python3 -c 'import logging_loki' 2>/dev/null; then
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'python-logging-loki==0.3.1' \
    || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages 'python-logging-loki==0.3.1'
