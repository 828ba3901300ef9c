#!/usr/bin/env bash
# Fails when a crate depends against the data path (ARCHITECTURE.md, STYLE.md section 3):
#   proto <- storage <- ingest,  storage <- query <- ui,  sim -> proto only,
#   nothing depends on the root package `sightline`;
# or when the normal dependency graph holds more than one version of arrow or parquet.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

status=0

# Package names in the normal (non-dev, non-build) dependencies of $1, itself excluded.
# $2 (optional) limits the depth: 1 means direct dependencies only.
deps_of() {
    local depth_args=()
    if [[ -n "${2:-}" ]]; then depth_args=(--depth "$2"); fi
    local tree
    tree=$(cargo tree --quiet -p "$1" -e normal --prefix none --format '{p}' "${depth_args[@]}")
    awk '{print $1}' <<<"$tree" | sort -u | grep -vx "$1" || true
}

# forbid CRATE DEPTH FORBIDDEN...: fail if CRATE reaches any FORBIDDEN crate.
forbid() {
    local crate=$1 depth=$2
    shift 2
    local deps
    deps=$(deps_of "$crate" "$depth")
    for forbidden in "$@"; do
        if grep -qx "$forbidden" <<<"$deps"; then
            echo "dependency direction violated: $crate depends on $forbidden" >&2
            status=1
        fi
    done
}

forbid proto "" storage ingest query ui sim sightline
forbid storage "" ingest query ui sim sightline
forbid ingest "" query ui sim sightline
forbid query "" ingest ui sim sightline
forbid ui 1 storage ingest sim sightline
forbid sim "" storage ingest query ui sightline

# One version of each arrow / parquet crate in the whole normal graph. (`cargo tree -i arrow`
# errors out when arrow is absent or ambiguous, so list everything and count versions instead.)
graph=$(cargo tree --quiet --workspace -e normal --prefix none --format '{p}')
duplicates=$(awk '$1 ~ /^(arrow|arrow-.*|parquet)$/ {print $1, $2}' <<<"$graph" | sort -u \
    | awk '{count[$1]++; versions[$1] = versions[$1] " " $2}
           END {for (name in count) if (count[name] > 1) print name ":" versions[name]}')
if [[ -n "$duplicates" ]]; then
    echo "more than one version of:" >&2
    echo "$duplicates" >&2
    status=1
fi

if [[ $status -eq 0 ]]; then
    echo "dependency direction: ok"
fi
exit $status
