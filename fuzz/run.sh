#!/usr/bin/env bash
# Runs every fuzz target (or the ones named as arguments) for FUZZ_SECONDS
# each (default 60), starting from a copy of the seed corpus in a temporary
# directory so the corpus in the repository does not grow. Exits non-zero on
# the first target that crashes, after printing the artifact's path.
#
#   fuzz/run.sh                      # all targets, 60 s each
#   FUZZ_SECONDS=300 fuzz/run.sh chunked
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(request_head chunked response_head config)
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cargo fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The config loader resolves host names; the config target skips texts that
# would need a lookup, and also runs without a network when unshare allows it.
no_network=()
if unshare -rn true 2>/dev/null; then
    no_network=(unshare -rn)
fi

failed=()
for t in "${targets[@]}"; do
    corpus="$work/$t"
    mkdir -p "$corpus" "artifacts/$t"
    cp corpus/"$t"/* "$corpus"/
    prefix=()
    [ "$t" = config ] && prefix=("${no_network[@]}")
    log="$work/$t.log"
    echo "== $t: ${seconds}s"
    # A hard stop a little after libFuzzer's own, in case a run hangs.
    set +e
    timeout --signal=KILL $((seconds + 120)) \
        "${prefix[@]}" cargo fuzz run "$t" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|#[0-9]+ *DONE' "$log" || true
    if [ $rc -ne 0 ]; then
        echo "!! $t failed (exit $rc)"
        grep -E 'panicked at|Test unit written to|SUMMARY' "$log" || tail -20 "$log"
        sed -n '/panicked at/,/^note:/p' "$log" | head -20
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
