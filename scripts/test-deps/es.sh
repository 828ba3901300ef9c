#!/usr/bin/env bash
# Installs the Elasticsearch Python client used by tests/ingest_es.rs (idempotent).
set -euo pipefail
if python3 -c 'import elasticsearch, yaml, sys; sys.exit(0 if elasticsearch.__versionstr__.startswith("8.") else 1)' 2>/dev/null; then
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'elasticsearch>=8,<9' pyyaml \
    || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages 'elasticsearch>=8,<9' pyyaml
