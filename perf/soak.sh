#!/usr/bin/env bash
# Bounded soak: SOAK_SECONDS of mixed traffic through one ringway worker, with
# well-behaved load (wrk) next to hostile clients and a misbehaving origin
# (perf/soak_peers.py). Reports requests served, outcomes by kind, and the
# proxy's memory and open descriptors before and after; exits non-zero if a
# well-behaved request failed or if memory or descriptors grew.
#
#   bash perf/soak.sh                 # 180 s
#   SOAK_SECONDS=30 bash perf/soak.sh
#
# Everything runs on 127.0.0.1 and is stopped by PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS="${SOAK_SECONDS:-180}"
SKIP_BUILD="${SKIP_BUILD:-0}"
for tool in wrk python3; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk python3 >/dev/null; }
done
if [[ "$SKIP_BUILD" != 1 ]]; then
    cargo build --release --quiet
    cargo build --release --quiet --example perf-backend
fi

WORK=$(mktemp -d /tmp/ringway-soak.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    return 1
}
GOOD=$(free_port); BAD=$(free_port); PROXY=$(free_port)
LIMIT=$((SOAK_SECONDS + 120))

timeout "$LIMIT" target/release/examples/perf-backend --listen "127.0.0.1:$GOOD" >/dev/null 2>&1 &
PIDS+=($!)
timeout "$LIMIT" python3 perf/soak_peers.py origin "$BAD" "$LIMIT" &
PIDS+=($!)
cat >"$WORK/ringway.toml" <<CONF
[global]
workers = 1
log_level = "error"

[[upstream]]
name = "good"
servers = ["127.0.0.1:$GOOD"]
keepalive = 32

[[upstream]]
name = "bad"
servers = ["127.0.0.1:$BAD"]
keepalive = 8
connect_timeout = "1s"
read_timeout = "1s"

[[server]]
listen = ["127.0.0.1:$PROXY"]
access_log = "off"
client_header_timeout = "2s"
client_body_timeout = "2s"
keepalive_timeout = "5s"
send_timeout = "5s"

[[server.location]]
path = "/good/"
proxy_pass = "http://good/"

[[server.location]]
path = "/bad/"
proxy_pass = "http://bad"
CONF
timeout "$LIMIT" target/release/ringway --config "$WORK/ringway.toml" 2>"$WORK/ringway.err" &
PIDS+=($!)
wait_port "$GOOD"; wait_port "$BAD"; wait_port "$PROXY"
# The proxy itself, not the `timeout` that runs it.
RW=$(pgrep -P "${PIDS[-1]}" -x ringway)

rss() { awk '/VmRSS/ {print $2}' "/proc/$RW/status"; }
fds() { find "/proc/$RW/fd" -mindepth 1 2>/dev/null | wc -l; }

# Warm up so that start-of-run allocations (pools, buffers) are in the baseline.
wrk -t1 -c50 -d5s "http://127.0.0.1:$PROXY/good/size/100" >/dev/null
sleep 6
RSS0=$(rss); FD0=$(fds)

wrk -t1 -c50 -d"${SOAK_SECONDS}s" --latency "http://127.0.0.1:$PROXY/good/size/100" >"$WORK/wrk-small.txt" &
W1=$!
wrk -t1 -c10 -d"${SOAK_SECONDS}s" "http://127.0.0.1:$PROXY/good/size/65536" >"$WORK/wrk-large.txt" &
W2=$!
python3 perf/soak_peers.py clients "$PROXY" "$SOAK_SECONDS" >"$WORK/clients.txt"
wait "$W1" "$W2"
RSS_LOADED=$(rss)

# Past keepalive_timeout every client connection is closed again.
sleep 7
RSS1=$(rss); FD1=$(fds)

summary() { awk '/requests in/ {r=$1} /Non-2xx/ {n=$NF} /Socket errors/ {e=$0} END {printf "%s requests, non-2xx %s, %s\n", r, (n==""?0:n), (e==""?"no socket errors":e)}' "$1"; }
echo "ringway soak: ${SOAK_SECONDS}s, commit $(git rev-parse --short HEAD), $(nproc) CPUs, kernel $(uname -r)"
echo "  wrk small (50 conns, /good/size/100):  $(summary "$WORK/wrk-small.txt")"
echo "  wrk large (10 conns, /good/size/65536): $(summary "$WORK/wrk-large.txt")"
echo "  hostile clients and bad origin:  $(cat "$WORK/clients.txt")"
echo "  RSS KiB: start $RSS0, under load $RSS_LOADED, end $RSS1;  open fds: start $FD0, end $FD1"

fail=0
for f in "$WORK/wrk-small.txt" "$WORK/wrk-large.txt"; do
    if grep -q "Non-2xx" "$f"; then echo "FAIL: a well-behaved request got a non-2xx answer ($f)"; fail=1; fi
done
if ((FD1 > FD0 + 2)); then echo "FAIL: open descriptors grew from $FD0 to $FD1"; fail=1; fi
if ((RSS1 > RSS0 * 3 / 2 + 8192)); then echo "FAIL: resident memory grew from $RSS0 to $RSS1 KiB"; fail=1; fi
if [[ -s "$WORK/ringway.err" ]]; then echo "ringway stderr:"; head -20 "$WORK/ringway.err"; fi
if ((fail == 0)); then echo "RESULT: OK"; else echo "RESULT: FAIL"; fi
exit "$fail"
