#!/usr/bin/env bash
# End-to-end remote_write ingest benchmark: Sightline against Prometheus 2.x and
# VictoriaMetrics on loopback (see benches/ingest_peers.rs and BENCHMARKS.md).
#
# Usage: scripts/bench-peers.sh [harness options]
#   e.g. scripts/bench-peers.sh --series 10000,100000
#        scripts/bench-peers.sh --series 1000000 --samples 8000000 --seconds 90
# Env: PEERS_SERIES, PEERS_SAMPLES, PEERS_MAX_ROUNDS, PEERS_SECONDS, PEERS_TARGETS,
#      SIGHTLINE_BIN, PROMETHEUS_BIN, VM_BIN (see the harness header).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Peers from Debian: prometheus (2.x) and victoria-metrics (single-node).
missing=()
command -v "${PROMETHEUS_BIN:-/usr/bin/prometheus}" >/dev/null 2>&1 || missing+=(prometheus)
command -v "${VM_BIN:-/usr/bin/victoria-metrics}" >/dev/null 2>&1 || missing+=(victoria-metrics)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The Debian packages start their services where a service manager runs: stop them, the
# harness starts its own instances on free loopback ports.
for unit in prometheus victoria-metrics; do
    as_root systemctl stop "$unit" >/dev/null 2>&1 || true
done

"${PROMETHEUS_BIN:-/usr/bin/prometheus}" --version 2>&1 | head -1 >&2
"${VM_BIN:-/usr/bin/victoria-metrics}" -version 2>&1 | head -1 >&2 || true

cargo build --release --bin sightline
# Bounded inside the harness: each target gets at most --seconds (default 60) of load,
# 90 s to become ready and bounded flush/settle waits; every server it starts is killed
# (Drop guard) when its target is done, also on failure.
exec cargo bench --bench ingest_peers -- "$@"
