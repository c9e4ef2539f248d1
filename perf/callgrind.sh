#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind.
#
#   bash perf/callgrind.sh            # plain HTTP/1.1, the `tiny` request
#   PROTO=h2c bash perf/callgrind.sh  # HTTP/2 with prior knowledge, one stream at a time
#   KEEP=dir bash perf/callgrind.sh   # keeps both profiles, for callgrind_annotate
#   TARGET=static bash perf/callgrind.sh  # a 1 KiB file from a static location instead
#
# ringway runs under `valgrind --tool=callgrind` with one worker, twice: once
# for N1 and once for N2 requests from `h2load -c 1` (one connection, one
# request at a time) for /size/100 of perf-backend. The difference of the
# two totals divided by N2 - N1 is the cost of one request, without start-up
# and shutdown. Instructions are counted, not timed, so the figure repeats
# on a busy machine. Only user space is counted: system calls are not.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

N1="${N1:-2000}"
N2="${N2:-10000}"
PROTO="${PROTO:-h1}"          # h1 | h2c
TARGET="${TARGET:-proxy}"     # proxy (/size/100 from perf-backend) | static (a 1 KiB file)
DRIVER="${RINGWAY_DRIVER:-}"  # passed through: "" (io_uring) or legacy
SKIP_BUILD="${SKIP_BUILD:-0}"
KEEP="${KEEP:-}"              # a directory: the callgrind profiles are kept there

log() { printf '[callgrind] %s\n' "$*" >&2; }
die() { printf '[callgrind] error: %s\n' "$*" >&2; exit 2; }
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v h2load >/dev/null || die "h2load is not installed (apt-get install nghttp2-client)"

if [[ "$SKIP_BUILD" != 1 ]]; then
    cargo build --release --bin ringway --example perf-backend >&2
fi

WORK="$(mktemp -d /tmp/ringway-callgrind.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

read -r BACKEND_PORT PORT <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')"

wait_port() { # PORT PID
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

target/release/examples/perf-backend --listen "127.0.0.1:$BACKEND_PORT" --threads 1 >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
wait_port "$BACKEND_PORT" "${PIDS[-1]}" || die "perf-backend did not start"

case "$TARGET" in
    proxy) REQ_PATH=/size/100 ;;
    static) REQ_PATH=/static/1024 ;;
    *) die "TARGET must be proxy or static" ;;
esac
mkdir -p "$WORK/site/static"
head -c 1024 /dev/urandom >"$WORK/site/static/1024"

h2c_line=""
# h2load does not open a new connection after a GOAWAY: keepalive_requests
# (streams per connection) must not end the run.
[[ "$PROTO" == h2c ]] && h2c_line=$'h2c = true\nkeepalive_requests = 1000000'

cat >"$WORK/ringway.toml" <<EOF
[global]
workers = 1
log_level = "warn"

[[upstream]]
name = "backend"
servers = ["127.0.0.1:$BACKEND_PORT"]
keepalive = 32

[[server]]
listen = ["127.0.0.1:$PORT"]
access_log = "off"
$h2c_line

[[server.location]]
path = "/"
proxy_pass = "http://backend"

[[server.location]]
path = "/static/"
root = "$WORK/site"
EOF

h2load_args=(-c 1 -m 1)
[[ "$PROTO" == h1 ]] && h2load_args+=(--h1)

total() { # N -> total user-space instructions of a run of N requests
    local n=$1 out="$WORK/cg.$1"
    RINGWAY_DRIVER="$DRIVER" valgrind --tool=callgrind --callgrind-out-file="$out" \
        target/release/ringway --config "$WORK/ringway.toml" >"$WORK/ringway.$n.log" 2>&1 &
    local pid=$!
    wait_port "$PORT" "$pid" || { cat "$WORK/ringway.$n.log" >&2; die "ringway did not start"; }
    # One request first, unmeasured, so lazily built state exists in both runs.
    h2load "${h2load_args[@]}" -n 1 "http://127.0.0.1:$PORT$REQ_PATH" >/dev/null
    h2load "${h2load_args[@]}" -n "$n" "http://127.0.0.1:$PORT$REQ_PATH" >"$WORK/h2load.$n" \
        || die "h2load failed: $(cat "$WORK/h2load.$n")"
    grep -q "succeeded, 0 errored" "$WORK/h2load.$n" || log "h2load: $(grep 'requests:' "$WORK/h2load.$n")"
    kill -TERM "$pid"
    wait "$pid" || true
    [[ -n "$KEEP" ]] && mkdir -p "$KEEP" && cp "$out" "$KEEP/callgrind.$n.out"
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

t1=$(total "$N1")
t2=$(total "$N2")
per=$(( (t2 - t1) / (N2 - N1) ))
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'), ${PROTO} ${REQ_PATH}, driver ${DRIVER:-io_uring}: ${t1} instructions for ${N1} requests, ${t2} for ${N2}: ${per} per request"
