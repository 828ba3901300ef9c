#!/usr/bin/env bash
# Installs py_zipkin (with its proto3 encoder) for tests/ingest_zipkin.rs (idempotent).
set -euo pipefail
if python3 -c 'import sys; from py_zipkin.encoding.protobuf import installed; sys.exit(0 if installed() else 1)' 2>/dev/null; then
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'py_zipkin[protobuf]>=1,<2' \
    || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages 'py_zipkin[protobuf]>=1,<2'
