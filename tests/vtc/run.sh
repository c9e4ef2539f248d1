#!/usr/bin/env bash
# Runs the varnishtest cases in this directory (or the ones named after the
# binary) against a ringway binary that is already built:
#
#   tests/vtc/run.sh target/debug/ringway
#   tests/vtc/run.sh target/debug/ringway tests/vtc/exchanges.vtc
#
# Each case starts its own fake origin and its own ringway (one worker, on a
# loopback port the kernel picked) and stops both before it ends. Installs
# Debian's varnish package, which ships varnishtest, when it is missing.
# Prints one line per case and a summary; exits non-zero if any case failed.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 RINGWAY_BINARY [CASE.vtc ...]" >&2
    exit 2
fi
ringway="$(realpath "$1")"
shift
[ -x "$ringway" ] || { echo "vtc: $ringway is not an executable" >&2; exit 2; }

here="$(cd "$(dirname "$0")" && pwd)"
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=("$here"/*.vtc)
fi

# Seconds one case may run; every case takes one or two.
CASE_TIMEOUT="${VTC_CASE_TIMEOUT:-30}"

if ! command -v varnishtest >/dev/null; then
    echo "vtc: installing varnish (for varnishtest)"
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    command -v apt-get >/dev/null || { echo "vtc: varnishtest is missing and apt-get is not available" >&2; exit 2; }
    "${as_root[@]}" apt-get install -y -qq varnish >/dev/null ||
        { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq varnish >/dev/null; }
fi

passed=0
failed=()
for c in "${cases[@]}"; do
    name="$(basename "$c" .vtc)"
    log="$(mktemp)"
    # varnishtest's own -t ends a case that hangs; timeout(1) is the backstop
    # should varnishtest itself hang.
    if timeout --kill-after=5 $((CASE_TIMEOUT + 10)) \
        varnishtest -t "$CASE_TIMEOUT" -D ringway="$ringway" "$c" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "vtc: ok    $name ($(sed -n 's/.* passed (\(.*\))$/\1/p' "$log" | tail -1)s)"
    else
        failed+=("$name")
        echo "vtc: FAIL  $name"
        # The failing steps first, then the whole log for the details.
        grep -E '^(----|#)' "$log" | sed 's/^/    /' || true
        sed 's/^/    | /' "$log"
    fi
    rm -f "$log"
done

echo "vtc: ${passed} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[ ${#failed[@]} -eq 0 ]
