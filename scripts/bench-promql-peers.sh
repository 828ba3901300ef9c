#!/usr/bin/env bash
# End-to-end PromQL latency: Sightline against Prometheus 2.x holding the same data, on
# loopback (see benches/promql_peers.rs and BENCHMARKS.md).
#
# Usage: scripts/bench-promql-peers.sh [harness options]
#   e.g. scripts/bench-promql-peers.sh                      # 100k series x 1 h, 7 runs
#        scripts/bench-promql-peers.sh --series 10000 --runs 3
# Env: SIGHTLINE_BIN, PROMETHEUS_BIN (see the harness header).
set -euo pipefail
cd "$(dirname "$0")/.."

# Prometheus 2.x from Debian (installs it and stops the packaged service).
scripts/test-deps/prometheus.sh >&2

cargo build --release --bin sightline
# Bounded inside the harness: 90 s for each server to become ready, 300 s per request;
# both servers are killed (Drop guard) when the run ends, also on failure.
exec cargo bench --bench promql_peers -- "$@"
