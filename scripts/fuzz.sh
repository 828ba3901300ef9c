#!/usr/bin/env bash
# Fuzzes every ingest decoder for a bounded time: `scripts/fuzz.sh [seconds-per-target]`
# (default 30). Not part of CI (.ci/run does not call it).
#
# Builds the cargo-fuzz package in fuzz/ (libFuzzer, release with debug assertions and
# overflow checks), writes seed corpora from ../shared/testdata (read at run time, never
# copied into the repository) plus hand-made inputs, then runs each target in turn.
# Exits non-zero when any target crashed, panicked, timed out or ran out of memory, and
# prints the crashing input's path, its hex, and the command that reproduces it.
#
# Environment:
#   FUZZ_TARGETS     space-separated subset of targets (default: all)
#   FUZZ_SANITIZER   none (default: the crate forbids unsafe code) or address
#   FUZZ_JOBS        parallel fuzzing jobs per target (default 1; the machine has 2 cores)
#   SIGHTLINE_TESTDATA  seed fixtures (default: ../shared/testdata beside the repository)
#
# Only a stable toolchain is on our machines; cargo-fuzz needs nightly flags
# (-Zsanitizer, sancov passes), which RUSTC_BOOTSTRAP=1 unlocks on stable.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
    echo "usage: scripts/fuzz.sh [seconds-per-target]" >&2
    exit 2
fi
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
testdata=${SIGHTLINE_TESTDATA:-$root/../shared/testdata}
all_targets="remote_write_v1 remote_write_v1_diff remote_write_v2 otlp_traces_proto otlp_traces_json otlp_logs_proto
otlp_metrics_proto zipkin_json zipkin_proto loki_json loki_proto loki_labels es_bulk decompress"
targets=${FUZZ_TARGETS:-$all_targets}

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

fuzz=(cargo fuzz)
build_flags=(--fuzz-dir "$root/fuzz" --sanitizer "$sanitizer")

echo "==> building fuzz targets (sanitizer: $sanitizer)"
"${fuzz[@]}" build "${build_flags[@]}"

corpus_root=$root/fuzz/corpus
if [[ -d $testdata ]]; then
    echo "==> seeds from $testdata"
else
    echo "==> $testdata not found: hand-made seeds only" >&2
fi
python3 "$root/fuzz/seeds.py" "$corpus_root" "$testdata"

failed=()
for target in $targets; do
    corpus=$corpus_root/$target
    artifacts=$root/fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    log=$root/fuzz/artifacts/$target.log
    echo "==> $target: ${seconds}s, corpus $(find "$corpus" -type f | wc -l) inputs"
    known=$(mktemp)
    find "$artifacts" -type f | sort >"$known"
    parallel=()
    if [[ $jobs -gt 1 ]]; then
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    # libFuzzer flags: stop after the time budget; an input slower than 10 s is a hang;
    # growing past 1 GiB RSS on an input of at most 64 KiB is a memory blow-up.
    set +e
    "${fuzz[@]}" run "${build_flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
        -max_len=65536 "${parallel[@]}" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1
    status=$?
    set -e
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|#[0-9]+ +DONE' "$log" | tail -n 3 | sed 's/^/    /'
    new_inputs=$(find "$artifacts" -type f | sort | comm -13 "$known" -)
    rm -f "$known"
    if [[ $status -ne 0 || -n $new_inputs ]]; then
        failed+=("$target")
        echo "!!! $target failed (exit $status); log: $log"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|deadly signal|out-of-memory|timeout' "$log" \
            | head -n 5 | sed 's/^/    /'
        for input in $new_inputs; do
            echo "    input: $input ($(stat -c %s "$input") bytes)"
            xxd -l 512 "$input" | sed 's/^/      /'
            echo "    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s $sanitizer $target $input"
        done
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "==> fuzzing found problems in: ${failed[*]}"
    exit 1
fi
echo "==> no crash in $(wc -w <<<"$targets") targets (${seconds}s each)"
