#!/usr/bin/env bash
# Side-by-side load test: ringway vs nginx vs haproxy behind the same origin.
#
#   bash perf/run.sh > perf-report.txt
#
# The report (machine header and result tables) goes to stdout; progress and
# build output go to stderr. See perf/README.md for the knobs and how to read
# the tables. Everything started here is stopped by PID on exit.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# ---------------------------------------------------------------- knobs ----
ROUNDS="${ROUNDS:-3}"                  # interleaved rounds per scenario
DURATION="${DURATION:-5s}"             # wrk -d per measured run
WARMUP="${WARMUP:-1s}"                 # unmeasured wrk run per proxy and scenario ("0" = none)
SCENARIOS="${SCENARIOS-tiny,16k,1m,close,c500}"    # add up1k,up1m for uploads, tls,tlsnew for HTTPS; "" = none
WORKERS="${WORKERS:-1}"                # worker processes/threads for every proxy
if [[ "$WORKERS" -le 1 ]]; then _default_proxy_cpus=0; else _default_proxy_cpus="0-$((WORKERS - 1))"; fi
PROXY_CPUS="${PROXY_CPUS:-$_default_proxy_cpus}"   # taskset list for the proxy under test
LOAD_CPUS="${LOAD_CPUS:-1}"            # taskset list for wrk and the memory-test client
BACKEND_CPUS="${BACKEND_CPUS:-1}"      # taskset list for perf-backend
BACKEND_THREADS="${BACKEND_THREADS:-1}"
WRK_THREADS="${WRK_THREADS:-1}"
WRK_TIMEOUT="${WRK_TIMEOUT:-5s}"
UPSTREAM_KEEPALIVE="${UPSTREAM_KEEPALIVE:-32}"     # idle upstream connections kept, all proxies
SKIP_RINGWAY="${SKIP_RINGWAY:-0}"      # 1 = only nginx and haproxy
SKIP_BUILD="${SKIP_BUILD:-0}"          # 1 = use the existing target/release binaries
MEMTEST="${MEMTEST:-0}"                # 1 = idle-connection memory test after the scenarios
MEMTEST_CONNS="${MEMTEST_CONNS:-10000}"
HSTEST="${HSTEST:-0}"                  # 1 = TLS handshake test (openssl s_time, new and resumed sessions)
HS_TIME="${HS_TIME:-5}"                # seconds per s_time run
START_TIMEOUT="${START_TIMEOUT:-10}"   # seconds to wait for a listener
PAUSE="${PAUSE:-0.2}"                  # seconds between runs
KEEP_WORK="${KEEP_WORK:-0}"            # 1 = keep the temporary directory (configs, logs, wrk output)

RINGWAY_BIN="target/release/ringway"
BACKEND_BIN="target/release/examples/perf-backend"

log() { printf '[perf] %s\n' "$*" >&2; }
die() { printf '[perf] error: %s\n' "$*" >&2; exit 2; }

# --------------------------------------------------------------- tools -----
ensure_tools() {
    local missing=()
    command -v nginx   >/dev/null 2>&1 || missing+=(nginx-light)
    command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
    command -v wrk     >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load  >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v curl    >/dev/null 2>&1 || missing+=(curl)
    command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing: ${missing[*]}"
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]} and not root"
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    # Installing nginx may start a system nginx service. It is not ours, so it
    # is left alone; it listens on port 80, which this script never uses.
}

# ------------------------------------------------- process bookkeeping -----
WORK=""
PIDS=()          # every process we started, in start order

cleanup() {
    local rc=$?
    set +e
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[$i]}"
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 30; i++)); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
    wait 2>/dev/null
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "$KEEP_WORK" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

alive() { kill -0 "$1" 2>/dev/null; }

# wait_port PORT PID NAME: wait until PORT accepts, failing if PID exits.
wait_port() {
    local port=$1 pid=$2 name=$3 deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        alive "$pid" || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    log "$name did not accept on port $port within ${START_TIMEOUT}s"
    return 1
}

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# secs "5s" -> 5 ; wrk accepts s/m/h suffixes.
to_secs() {
    local v=$1
    case "$v" in
        *ms) echo 1 ;;
        *s) echo "${v%s}" ;;
        *m) echo $((${v%m} * 60)) ;;
        *h) echo $((${v%h} * 3600)) ;;
        *) echo "$v" ;;
    esac
}

CLK_TCK="$(getconf CLK_TCK)"

# proxy_pids NAME: the processes whose CPU time and memory are charged to NAME.
proxy_pids() {
    case "$1" in
        ringway) echo "$RINGWAY_PID" ;;
        haproxy) echo "$HAPROXY_PID" ;;
        nginx)
            echo "$NGINX_PID"
            local c
            for c in /proc/[0-9]*/stat; do
                local s
                s=$(cat "$c" 2>/dev/null) || continue
                local rest=${s##*) }
                # shellcheck disable=SC2086
                set -- $rest
                if [[ "$2" == "$NGINX_PID" ]]; then c=${c#/proc/}; echo "${c%/stat}"; fi
            done
            ;;
    esac
    return 0
}

# cpu_ticks PID...: utime+stime (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
    local total=0 p s rest
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${s##*) }
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# rss_kb PID...: summed VmRSS.
rss_kb() {
    local total=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# cpu_set LIST: "0-2,5" -> " 0 1 2 5 "
cpu_set() {
    local part out=" " a b i parts
    IFS=',' read -r -a parts <<<"$1"
    for part in "${parts[@]}"; do
        a=${part%-*}; b=${part#*-}
        for ((i = a; i <= b; i++)); do out+="$i "; done
    done
    echo "$out"
}

# cpu_busy SET: "busy total task" jiffies of the CPUs in SET, from
# /proc/stat; busy includes interrupts, task is user + nice + system only.
cpu_busy() {
    awk -v set="$1" '$1 ~ /^cpu[0-9]+$/ && index(set, " " substr($1, 4) " ") {
        for (i = 2; i <= 9; i++) t += $i
        b += $2 + $3 + $4 + $7 + $8 + $9
        u += $2 + $3 + $4
    } END { print b + 0, t + 0, u + 0 }' /proc/stat
}

backend_conns() { curl -s --max-time 5 "http://127.0.0.1:$BACKEND_PORT/__conns" || echo "?"; }

# ---------------------------------------------------------------- setup ----
ensure_tools
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
LOAD_SET="$(cpu_set "$LOAD_CPUS")"
PROXY_SET="$(cpu_set "$PROXY_CPUS")"
# When the proxy has its CPUs to itself, any other task time on them is noise
# from outside the test, and is reported. Not measured when CPUs are shared.
NOISE_SET="$PROXY_SET"
for _c in $PROXY_SET; do
    [[ "$(cpu_set "$LOAD_CPUS")$(cpu_set "$BACKEND_CPUS")" == *" $_c "* ]] && NOISE_SET=" "
done

WORK="$(mktemp -d /tmp/ringway-perf.XXXXXX)"
chmod 755 "$WORK"

if [[ "$SKIP_BUILD" != 1 ]]; then
    if [[ "$SKIP_RINGWAY" != 1 ]]; then
        log "cargo build --release"
        cargo build --release >&2
    fi
    log "cargo build --release --example perf-backend"
    cargo build --release --example perf-backend >&2
fi
[[ -x "$BACKEND_BIN" ]] || die "$BACKEND_BIN not found"
if [[ "$SKIP_RINGWAY" != 1 ]]; then
    [[ -x "$RINGWAY_BIN" ]] || die "$RINGWAY_BIN not found (SKIP_RINGWAY=1 runs nginx and haproxy only)"
    PROXIES=(ringway nginx haproxy)
else
    PROXIES=(nginx haproxy)
fi

read -r BACKEND_PORT RINGWAY_PORT NGINX_PORT HAPROXY_PORT RINGWAY_TLS_PORT NGINX_TLS_PORT HAPROXY_TLS_PORT \
    <<<"$(free_ports 7)"
declare -A PORT=([ringway]=$RINGWAY_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
declare -A TLS_PORT=([ringway]=$RINGWAY_TLS_PORT [nginx]=$NGINX_TLS_PORT [haproxy]=$HAPROXY_TLS_PORT)

# ---------------------------------------------------------- certificate ----
# One ECDSA P-256 certificate for every proxy's HTTPS listener: the usual
# choice at the edge, and one that Mozilla's intermediate profile allows.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=perf.test" -addext "subjectAltName=DNS:perf.test,IP:127.0.0.1" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null || die "openssl could not make a certificate"
cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"   # haproxy reads both from one file

# -------------------------------------------------------------- backend ----
log "starting perf-backend on 127.0.0.1:$BACKEND_PORT (cpus $BACKEND_CPUS, $BACKEND_THREADS thread(s))"
taskset -c "$BACKEND_CPUS" "$BACKEND_BIN" --listen "127.0.0.1:$BACKEND_PORT" --threads "$BACKEND_THREADS" \
    >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_port "$BACKEND_PORT" "$BACKEND_PID" backend || { cat "$WORK/backend.log" >&2; die "backend failed to start"; }

# -------------------------------------------------------------- configs ----
cat >"$WORK/ringway.toml" <<EOF
[global]
workers = $WORKERS
log_level = "warn"

[[upstream]]
name = "backend"
servers = ["127.0.0.1:$BACKEND_PORT"]
keepalive = $UPSTREAM_KEEPALIVE

[[server]]
listen = ["127.0.0.1:$RINGWAY_PORT"]
access_log = "off"

[[server.location]]
path = "/"
proxy_pass = "http://backend"

[[server]]
listen = ["127.0.0.1:$RINGWAY_TLS_PORT"]
access_log = "off"
tls = { cert = "$WORK/tls.crt", key = "$WORK/tls.key" }

[[server.location]]
path = "/"
proxy_pass = "http://backend"
EOF

mkdir -p "$WORK/nginx"
NGINX_EXTRA_TEMP=""
nginx_v="$(nginx -V 2>&1)"
for m in fastcgi uwsgi scgi; do
    [[ "$nginx_v" == *"--without-http_${m}_module"* ]] || NGINX_EXTRA_TEMP+="    ${m}_temp_path $WORK/nginx/${m};"$'\n'
done
NGINX_USER=""
[[ "$(id -u)" -eq 0 ]] && NGINX_USER="user root;"
NGINX_WORKER_CONNS=$((NOFILE - 100))
((NGINX_WORKER_CONNS > 65536)) && NGINX_WORKER_CONNS=65536
cat >"$WORK/nginx/nginx.conf" <<EOF
$NGINX_USER
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;

events {
    worker_connections $NGINX_WORKER_CONNS;
}

http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
$NGINX_EXTRA_TEMP
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_max_temp_file_size 0;

    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive $UPSTREAM_KEEPALIVE;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT reuseport backlog=4096;
        listen 127.0.0.1:$NGINX_TLS_PORT ssl reuseport backlog=4096;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;

        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }
}
EOF

# haproxy reserves two descriptors per connection (client and server side).
# When the memory test needs more connections than that allows under the
# current descriptor limit, let it start anyway: idle client connections use
# one descriptor each.
HAPROXY_MAXCONN=$(((NOFILE - 100) / 2))
HAPROXY_LIMITS=""
if [[ "$MEMTEST" == 1 ]] && ((HAPROXY_MAXCONN < MEMTEST_CONNS + 100)); then
    HAPROXY_MAXCONN=$((MEMTEST_CONNS + 100))
    HAPROXY_LIMITS="no strict-limits"
fi
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn $HAPROXY_MAXCONN
    $HAPROXY_LIMITS

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-request 60s
    timeout http-keep-alive 75s

frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    bind 127.0.0.1:$HAPROXY_TLS_PORT ssl crt $WORK/tls.pem alpn http/1.1
    maxconn $HAPROXY_MAXCONN
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http unless { ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend be

backend be
    server origin 127.0.0.1:$BACKEND_PORT pool-max-conn $UPSTREAM_KEEPALIVE
EOF

# --------------------------------------------------------------- proxies ---
RINGWAY_PID="" NGINX_PID="" HAPROXY_PID=""
start_proxy() {
    local name=$1
    case "$name" in
        ringway)
            taskset -c "$PROXY_CPUS" "$RINGWAY_BIN" --config "$WORK/ringway.toml" --workers "$WORKERS" \
                >"$WORK/ringway.log" 2>&1 &
            RINGWAY_PID=$!; PIDS+=("$RINGWAY_PID") ;;
        nginx)
            nginx -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 \
                || { cat "$WORK/nginx.log" >&2; die "nginx config test failed"; }
            taskset -c "$PROXY_CPUS" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
                >>"$WORK/nginx.log" 2>&1 &
            NGINX_PID=$!; PIDS+=("$NGINX_PID") ;;
        haproxy)
            taskset -c "$PROXY_CPUS" haproxy -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
            HAPROXY_PID=$!; PIDS+=("$HAPROXY_PID") ;;
    esac
    local pid_var="${name^^}_PID"
    if ! wait_port "${PORT[$name]}" "${!pid_var}" "$name"; then
        log "$name failed to start; its output:"
        tail -n 30 "$WORK/$name.log" >&2 || true
        [[ "$name" == nginx ]] && tail -n 30 "$WORK/nginx/error.log" >&2 || true
        die "$name failed to start"
    fi
    if [[ "$name" == nginx ]]; then
        # The workers are ours too: stop them by PID if the master does not.
        local deadline=$((SECONDS + START_TIMEOUT)) w
        while ((SECONDS < deadline)); do
            [[ $(proxy_pids nginx | wc -l) -gt "$WORKERS" ]] && break
            sleep 0.05
        done
        for w in $(proxy_pids nginx); do
            if [[ "$w" != "$NGINX_PID" ]]; then PIDS+=("$w"); fi
        done
    fi
    return 0
}

for p in "${PROXIES[@]}"; do
    log "starting $p on 127.0.0.1:${PORT[$p]} (cpus $PROXY_CPUS, $WORKERS worker(s))"
    start_proxy "$p"
done

# Every thread of a proxy should be allowed to run on PROXY_CPUS only.
AFFINITY_NOTES=""
check_affinity() {
    local name=$1 p t got
    for p in $(proxy_pids "$name"); do
        for t in /proc/"$p"/task/*; do
            got=$(awk '/^Cpus_allowed_list:/ {print $2}' "$t/status" 2>/dev/null) || continue
            if [[ -n "$got" ]] && ! python3 - "$got" "$PROXY_CPUS" <<'EOF'
import sys
def cpus(s):
    out = set()
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
sys.exit(0 if cpus(sys.argv[1]) <= cpus(sys.argv[2]) else 1)
EOF
            then
                AFFINITY_NOTES+="  warning: $name thread ${t##*/} may run on CPUs $got (expected $PROXY_CPUS)"$'\n'
                return 0
            fi
        done
    done
    return 0
}

# Which request headers reach the origin through each proxy.
HEADER_NOTES=""
check_headers() {
    local name=$1 head ok=() bad=()
    head=$(curl -s --max-time 5 -H 'Host: perf.test:8080' "http://127.0.0.1:${PORT[$name]}/__echo" | tr -d '\r') || head=""
    grep -qi '^host: perf.test:8080$' <<<"$head" && ok+=(Host) || bad+=(Host)
    grep -qi '^x-forwarded-for: 127.0.0.1$' <<<"$head" && ok+=(X-Forwarded-For) || bad+=(X-Forwarded-For)
    grep -qi '^x-real-ip: 127.0.0.1$' <<<"$head" && ok+=(X-Real-IP) || bad+=(X-Real-IP)
    grep -qi '^x-forwarded-proto: http$' <<<"$head" && ok+=(X-Forwarded-Proto) || bad+=(X-Forwarded-Proto)
    local line
    line=$(printf '  %-8s origin saw: %s' "$name" "${ok[*]:-nothing expected}")
    [[ ${#bad[@]} -gt 0 ]] && line+="; missing or different: ${bad[*]}"
    HEADER_NOTES+="$line"$'\n'
}

for p in "${PROXIES[@]}"; do
    check_affinity "$p"
    check_headers "$p"
done

# ------------------------------------------------------------ scenarios ----
# name -> "path|connections|extra wrk args kind|upload bytes|description"
declare -A SCEN=(
    [tiny]="/size/100|10|-|0|GET 100 B, keep-alive, 10 connections"
    [16k]="/size/16384|10|-|0|GET 16 KiB, keep-alive, 10 connections"
    [1m]="/size/1048576|10|-|0|GET 1 MiB, keep-alive, 10 connections"
    [close]="/size/100|10|close|0|GET 100 B, client sends Connection: close, 10 connections"
    [c500]="/size/100|500|-|0|GET 100 B, keep-alive, 500 connections"
    [up1k]="/size/100|10|-|1024|POST 1 KiB body, 100 B response, keep-alive, 10 connections"
    [up1m]="/size/100|10|-|1048576|POST 1 MiB body, 100 B response, keep-alive, 10 connections"
    [tls]="/size/100|10|tls|0|GET 100 B over TLS, keep-alive, 10 connections"
    [tlsnew]="/size/100|10|tls-close|0|GET 100 B over TLS, Connection: close: a full handshake per request, 10 connections"
)

cat >"$WORK/parse_wrk.py" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def dur_us(v):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)?$", v)
    if not m:
        return -1
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7, "h": 3.6e9, None: 1e6}[m.group(2)]
def find(pat, default="0"):
    m = re.search(pat, text, re.M)
    return m.group(1) if m else default
rps = find(r"^Requests/sec:\s+([\d.]+)", "-1")
reqs = find(r"^\s*(\d+) requests in", "-1")
p50 = dur_us(find(r"^\s+50%\s+(\S+)", "x"))
p99 = dur_us(find(r"^\s+99%\s+(\S+)", "x"))
non2xx = find(r"Non-2xx or 3xx responses:\s+(\d+)")
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
sock = sum(int(x) for x in m.groups()) if m else 0
print(rps, reqs, round(p50, 1), round(p99, 1), non2xx, sock)
EOF

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
VERIFY_NOTES=""
RINGWAY_BAD=0

scenario_field() { local IFS='|'; local f; read -r -a f <<<"${SCEN[$1]}"; echo "${f[$2]}"; }

# target_url SCENARIO PROXY: the URL a scenario requests from a proxy.
target_url() {
    local path kind
    path=$(scenario_field "$1" 0); kind=$(scenario_field "$1" 2)
    case "$kind" in
        tls*) echo "https://127.0.0.1:${TLS_PORT[$2]}$path" ;;
        *) echo "http://127.0.0.1:${PORT[$2]}$path" ;;
    esac
}

# wrk_cmd SCENARIO DURATION PROXY -> sets WRK to the wrk command line
wrk_cmd() {
    local sc=$1 dur=$2 px=$3 conns kind up
    conns=$(scenario_field "$sc" 1)
    kind=$(scenario_field "$sc" 2); up=$(scenario_field "$sc" 3)
    WRK=(taskset -c "$LOAD_CPUS" wrk -t"$WRK_THREADS" -c"$conns" -d"$dur" --timeout "$WRK_TIMEOUT" --latency)
    [[ "$kind" == close || "$kind" == tls-close ]] && WRK+=(-H 'Connection: close')
    if [[ "$up" != 0 ]]; then
        local lua="$WORK/upload_$up.lua"
        [[ -f "$lua" ]] || printf 'wrk.method = "POST"\nwrk.body = string.rep("u", %d)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' "$up" >"$lua"
        WRK+=(-s "$lua")
    fi
    WRK+=("$(target_url "$sc" "$px")")
}

run_wrk() {  # run_wrk OUTFILE DURATION-SECONDS: runs "${WRK[@]}" bounded in time
    local out=$1 secs=$2
    timeout --kill-after=5 $((secs + 30)) "${WRK[@]}" >"$out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid" || true
}

measure() {  # measure SCENARIO PROXY ROUND
    local sc=$1 px=$2 round=$3 out="$WORK/wrk.$1.$2.$3.txt" pids c0 c1 k0 k1 b0 b1 bt0 bt1 pt0 pt1 pu0 pu1 t0 t1 secs
    wrk_cmd "$sc" "$DURATION" "$px"
    secs=$(to_secs "$DURATION")
    pids=$(proxy_pids "$px")
    k0=$(backend_conns)
    read -r b0 bt0 _ <<<"$(cpu_busy "$LOAD_SET")"
    read -r _ pt0 pu0 <<<"$(cpu_busy "$NOISE_SET")"
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    t0=$EPOCHREALTIME
    run_wrk "$out" "$secs"
    t1=$EPOCHREALTIME
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    read -r _ pt1 pu1 <<<"$(cpu_busy "$NOISE_SET")"
    read -r b1 bt1 _ <<<"$(cpu_busy "$LOAD_SET")"
    k1=$(backend_conns)
    local parsed
    parsed=$(python3 "$WORK/parse_wrk.py" "$out")
    local wall load_pct other_pct up="-1"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    load_pct=$(awk -v a="$((b1 - b0))" -v b="$((bt1 - bt0))" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : -1) }')
    # Time other processes spent on the proxy's CPUs; -1 when not measured.
    other_pct=$(awk -v a="$((pu1 - pu0 - (c1 - c0)))" -v b="$((pt1 - pt0))" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : -1) }')
    [[ "$k0" =~ ^[0-9]+$ && "$k1" =~ ^[0-9]+$ ]] && up=$((k1 - k0))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$px" "$round" "$parsed" "$((c1 - c0))" \
        "$wall" "$up" "$load_pct" "$other_pct" | tr ' ' '\t' >>"$RESULTS"
    local f
    read -r -a f <<<"$parsed"
    if [[ "$px" == ringway && ( "${f[0]}" == -1 || "${f[4]}" != 0 || "${f[5]}" != 0 ) ]]; then
        RINGWAY_BAD=1
        log "ringway: errors in $sc round $round (wrk output follows)"
        cat "$out" >&2
    fi
    if [[ "${f[0]}" == -1 ]]; then
        log "$px: wrk produced no result for $sc round $round:"
        cat "$out" >&2
    fi
}

# verify SCENARIO PROXY: one request with curl, checking status and body length.
verify() {
    local sc=$1 px=$2 path kind up expect got args=()
    path=$(scenario_field "$sc" 0); kind=$(scenario_field "$sc" 2); up=$(scenario_field "$sc" 3)
    expect=${path#/size/}
    [[ "$kind" == close || "$kind" == tls-close ]] && args+=(-H 'Connection: close')
    [[ "$kind" == tls* ]] && args+=(--insecure)
    if [[ "$up" != 0 ]]; then
        [[ -f "$WORK/body_$up" ]] || head -c "$up" /dev/zero | tr '\0' 'u' >"$WORK/body_$up"
        args+=(-X POST -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/body_$up")
    fi
    got=$(curl -s -o /dev/null --max-time 10 -w '%{http_code} %{size_download}' "${args[@]}" \
        "$(target_url "$sc" "$px")" 2>/dev/null) || got="curl-failed"
    if [[ "$got" != "200 $expect" ]]; then
        VERIFY_NOTES+="  $sc via $px: expected \"200 $expect\", got \"$got\""$'\n'
        [[ "$px" == ringway ]] && RINGWAY_BAD=1
        log "$sc via $px: expected status 200 and $expect body bytes, got $got"
    fi
}

IFS=',' read -r -a SCEN_LIST <<<"$SCENARIOS"
for sc in "${SCEN_LIST[@]}"; do
    [[ -z "$sc" ]] && continue
    [[ -n "${SCEN[$sc]+x}" ]] || die "unknown scenario '$sc' (known: ${!SCEN[*]})"
done

T_START=$SECONDS
for sc in "${SCEN_LIST[@]}"; do
    [[ -z "$sc" ]] && continue
    log "scenario $sc: $(scenario_field "$sc" 4)"
    for px in "${PROXIES[@]}"; do
        verify "$sc" "$px"
        if [[ "$WARMUP" != 0 ]]; then
            wrk_cmd "$sc" "$WARMUP" "$px"
            run_wrk "$WORK/warmup.txt" "$(to_secs "$WARMUP")"
            sleep "$PAUSE"
        fi
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for px in "${PROXIES[@]}"; do
            log "  round $r/$ROUNDS: $px"
            measure "$sc" "$px" "$r"
            sleep "$PAUSE"
        done
    done
done

# ------------------------------------------------------------ memory test --
MEM_RESULTS="$WORK/mem.tsv"
: >"$MEM_RESULTS"
cat >"$WORK/idle_conns.py" <<'EOF'
# Open N client connections, make one request on each, then keep them idle
# until RELEASE exists (or MAX_HOLD seconds pass). Prints "ready ..." once all
# connections are idle, and "done ..." when it closes them.
import errno, os, resource, selectors, socket, sys, time
port, n, release, max_hold = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
REQ = b"GET /size/100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
sel = selectors.DefaultSelector()
opened = idle = failed = 0
inflight = 0
conns = []
bufs = {}
deadline = time.time() + 60
def fail(s):
    global failed, inflight
    failed += 1; inflight -= 1
    try: sel.unregister(s)
    except Exception: pass
    s.close()
while idle + failed < n and time.time() < deadline:
    while opened < n and inflight < 200:
        s = socket.socket(); s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close(); failed += 1; opened += 1; continue
        opened += 1; inflight += 1
        sel.register(s, selectors.EVENT_WRITE, "connect")
    for key, ev in sel.select(timeout=0.5):
        s = key.fileobj
        if key.data == "connect":
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                fail(s); continue
            try: s.send(REQ)
            except OSError: fail(s); continue
            bufs[s] = b""
            sel.modify(s, selectors.EVENT_READ, "read")
        else:
            try: d = s.recv(65536)
            except OSError: d = b""
            if not d:
                fail(s); continue
            b = bufs[s] + d
            bufs[s] = b
            h = b.find(b"\r\n\r\n")
            if h < 0: continue
            cl = 0
            for line in b[:h].split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length": cl = int(v)
            if len(b) >= h + 4 + cl:
                del bufs[s]
                sel.modify(s, selectors.EVENT_READ, "idle")
                conns.append(s); idle += 1; inflight -= 1
print("ready idle=%d failed=%d" % (idle, failed), flush=True)
closed = 0
end = time.time() + max_hold
while time.time() < end and not os.path.exists(release):
    for key, ev in sel.select(timeout=0.1):
        if key.data == "idle":
            try: d = key.fileobj.recv(4096)
            except OSError: d = b""
            if not d:
                sel.unregister(key.fileobj); closed += 1
for s in conns: s.close()
print("done closed_by_peer=%d" % closed, flush=True)
EOF

memtest() {  # memtest PROXY
    local px=$1 pids r0 r1 out="$WORK/mem.$1.txt" rel="$WORK/mem.$1.release" pid ready="" i
    pids=$(proxy_pids "$px")
    # shellcheck disable=SC2086
    r0=$(rss_kb $pids)
    taskset -c "$LOAD_CPUS" timeout --kill-after=5 120 python3 "$WORK/idle_conns.py" "${PORT[$px]}" "$MEMTEST_CONNS" "$rel" 90 \
        >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 900; i++)); do
        ready=$(grep -m1 '^ready' "$out" 2>/dev/null || true)
        [[ -n "$ready" ]] && break
        alive "$pid" || break
        sleep 0.1
    done
    sleep 1
    # shellcheck disable=SC2086
    r1=$(rss_kb $pids)
    touch "$rel"
    wait "$pid" || true
    local idle failed closed
    idle=$(sed -n 's/^ready idle=\([0-9]*\).*/\1/p' "$out"); failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' "$out")
    closed=$(sed -n 's/^done closed_by_peer=\([0-9]*\).*/\1/p' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$px" "$r0" "$r1" "${idle:-0}" "${failed:-?}" "${closed:-?}" >>"$MEM_RESULTS"
    sleep 1
}

if [[ "$MEMTEST" == 1 ]]; then
    for px in "${PROXIES[@]}"; do
        log "memory test: $MEMTEST_CONNS idle connections to $px"
        memtest "$px"
    done
fi

# ------------------------------------------------------- handshake test ----
# TLS handshakes per second and proxy CPU per handshake, with openssl s_time:
# "new" makes a full handshake on every connection, "reuse" resumes the
# session of the first one. Each connection fetches /size/100, so the client
# reads TLS 1.3 session tickets before it closes.
HS_RESULTS="$WORK/hs.tsv"
: >"$HS_RESULTS"
hstest() {  # hstest PROXY MODE ROUND
    local px=$1 mode=$2 round=$3 out="$WORK/hs.$1.$2.$3.txt" pids c0 c1 conns secs resumed
    pids=$(proxy_pids "$px")
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    timeout --kill-after=5 $((HS_TIME + 30)) taskset -c "$LOAD_CPUS" openssl s_time \
        -connect "127.0.0.1:${TLS_PORT[$px]}" "-$mode" -time "$HS_TIME" -www /size/100 >"$out" 2>&1 || true
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    read -r conns secs <<<"$(sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real seconds.*/\1 \2/p' "$out" | head -n1)"
    # s_time prints one character per connection: "r" when the session was resumed.
    resumed=$(grep -E '^[*r]+$' "$out" | tr -d '*\n' | wc -c)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$px" "$mode" "$round" "${conns:-0}" "${secs:-0}" "$((c1 - c0))" \
        "$resumed" >>"$HS_RESULTS"
}

if [[ "$HSTEST" == 1 ]]; then
    for ((r = 1; r <= ROUNDS; r++)); do
        for mode in new reuse; do
            for px in "${PROXIES[@]}"; do
                log "handshake test round $r/$ROUNDS: $px, $mode sessions"
                hstest "$px" "$mode" "$r"
                sleep "$PAUSE"
            done
        done
    done
fi

# Proxies must still be up: a crash mid-run invalidates the numbers.
for px in "${PROXIES[@]}"; do
    pid_var="${px^^}_PID"
    if ! alive "${!pid_var}"; then
        VERIFY_NOTES+="  $px exited during the run"$'\n'
        [[ "$px" == ringway ]] && RINGWAY_BAD=1
    fi
done

# ----------------------------------------------------------------- report --
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo "no commits")
git_state=$([[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo "uncommitted changes" || echo "clean")
[[ "$git_rev" == "no commits" ]] && git_state="nothing committed yet"
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
backend_driver=$(sed -n 's/.*driver \(.*\)$/\1/p' "$WORK/backend.log" | head -n1)

{
    echo "ringway perf run"
    echo "  date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "  commit:      $git_rev ($git_state)"
    echo "  machine:     $(nproc) CPUs, ${cpu_model:-unknown CPU}, kernel $(uname -r)"
    echo "  tools:       $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -n1 | awk '{print "haproxy " $3}'), $(wrk -v 2>&1 | head -n1 | awk '{print "wrk " $2}')"
    echo "  layout:      proxy on CPU $PROXY_CPUS ($WORKERS worker(s) each); wrk on CPU $LOAD_CPUS; backend on CPU $BACKEND_CPUS ($BACKEND_THREADS thread(s), ${backend_driver:-?})"
    echo "  runs:        $ROUNDS interleaved round(s) x $DURATION per proxy and scenario, warm-up $WARMUP; wrk -t$WRK_THREADS --timeout $WRK_TIMEOUT"
    echo "  upstream:    keep-alive, at most $UPSTREAM_KEEPALIVE idle connections kept by each proxy"
    echo "  headers:"
    printf '%s' "$HEADER_NOTES"
    [[ -n "$AFFINITY_NOTES" ]] && printf '%s' "$AFFINITY_NOTES"
    echo
} 

declare -A DESC
for sc in "${!SCEN[@]}"; do DESC[$sc]=$(scenario_field "$sc" 4); done
python3 - "$RESULTS" "$MEM_RESULTS" "$CLK_TCK" "$SCENARIOS" "${PROXIES[*]}" "$MEMTEST_CONNS" \
    "$(for sc in "${SCEN_LIST[@]}"; do [[ -n "$sc" ]] && printf '%s=%s\n' "$sc" "${DESC[$sc]}"; done)" <<'EOF'
import statistics, sys
results, mem, tck, scenarios, proxies, memconns, descs = sys.argv[1:8]
tck = float(tck)
proxies = proxies.split()
desc = dict(l.split("=", 1) for l in descs.splitlines() if "=" in l)
rows = {}
for line in open(results):
    f = line.rstrip("\n").split("\t")
    if len(f) < 14:
        continue
    sc, px, rnd = f[0], f[1], int(f[2])
    rps, reqs, p50, p99, non2xx, sock = float(f[3]), int(f[4]), float(f[5]), float(f[6]), int(f[7]), int(f[8])
    ticks, wall, up, load, other = int(f[9]), float(f[10]), int(f[11]), float(f[12]), float(f[13])
    r = dict(rps=rps, p50=p50, p99=p99, errors=non2xx + sock, non2xx=non2xx, sock=sock, load=load, other=other)
    ok = reqs > 0 and rps >= 0
    r["cpu_us"] = ticks / tck * 1e6 / reqs if ok else None
    r["cpu_pct"] = 100.0 * ticks / tck / wall if wall > 0 else None
    r["up_per_1k"] = 1000.0 * up / reqs if ok and up >= 0 else None
    rows.setdefault(sc, {}).setdefault(px, []).append(r)

def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None and r[k] >= 0]
    return statistics.median(v) if v else None

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

summary = []
for sc in [s for s in scenarios.split(",") if s]:
    if sc not in rows:
        continue
    n = max(len(v) for v in rows[sc].values())
    print("== %s: %s (median of %d round%s) ==" % (sc, desc.get(sc, ""), n, "" if n == 1 else "s"))
    hdr = "%-8s %10s %11s %6s %9s %9s %12s %8s %6s" % (
        "proxy", "req/s", "cpu us/req", "cpu%", "p50 us", "p99 us", "up-conn/1k", "errors", "load%")
    print(hdr)
    print("-" * len(hdr))
    m = {}
    for px in proxies:
        rs = rows[sc].get(px)
        if not rs:
            continue
        m[px] = {k: med(rs, k) for k in ("rps", "cpu_us", "cpu_pct", "p50", "p99", "up_per_1k", "load", "other")}
        err = sum(r["errors"] for r in rs)
        print("%-8s %10s %11s %6s %9s %9s %12s %8d %6s" % (
            px, fmt(m[px]["rps"], ",.0f"), fmt(m[px]["cpu_us"], ".1f"), fmt(m[px]["cpu_pct"], ".0f"),
            fmt(m[px]["p50"], ".0f"), fmt(m[px]["p99"], ".0f"), fmt(m[px]["up_per_1k"], ".2f"), err,
            fmt(m[px]["load"], ".0f")))
    noisy = []
    for px in m:
        worst = max((r["other"] for r in rows[sc][px]), default=0)
        if worst >= 5:
            noisy.append("%.0f%% (%s)" % (worst, px))
    if noisy:
        print("note: processes outside the test took up to %s of the proxy CPU in some rounds; "
              "those figures are less reliable" % ", ".join(noisy))
    if "ringway" in m:
        parts = []
        line = {"sc": sc}
        for ref in ("nginx", "haproxy"):
            if ref not in m:
                continue
            a, b = m["ringway"], m[ref]
            rr = a["rps"] / b["rps"] if a["rps"] and b["rps"] else None
            cr = a["cpu_us"] / b["cpu_us"] if a["cpu_us"] and b["cpu_us"] else None
            line[ref] = (rr, cr)
            parts.append("vs %s: req/s x%s, cpu/req x%s" % (ref, fmt(rr, ".2f"), fmt(cr, ".2f")))
        if parts:
            print("ringway " + "; ".join(parts))
        summary.append(line)
    print()

if summary:
    print("== ringway ratios (req/s: higher is better; cpu/req: lower is better) ==")
    print("%-8s %14s %14s %16s %16s" % ("scenario", "req/s /nginx", "cpu/req /nginx", "req/s /haproxy", "cpu/req /haproxy"))
    for line in summary:
        n_ = line.get("nginx", (None, None)); h_ = line.get("haproxy", (None, None))
        print("%-8s %14s %14s %16s %16s" % (line["sc"], fmt(n_[0], ".2f"), fmt(n_[1], ".2f"),
                                            fmt(h_[0], ".2f"), fmt(h_[1], ".2f")))
    print()

mrows = [l.rstrip("\n").split("\t") for l in open(mem) if l.strip()]
if mrows:
    print("== memory: %s idle keep-alive client connections (one request each, then idle) ==" % memconns)
    hdr = "%-8s %12s %12s %12s %14s %8s %10s" % ("proxy", "RSS before", "RSS after", "idle conns", "bytes/conn", "failed", "closed")
    print(hdr)
    print("-" * len(hdr))
    for px, r0, r1, idle, failed, closed in mrows:
        r0, r1, idle = int(r0), int(r1), int(idle)
        per = (r1 - r0) * 1024.0 / idle if idle else None
        print("%-8s %9.1f MiB %9.1f MiB %12d %14s %8s %10s" % (px, r0 / 1024, r1 / 1024, idle, fmt(per, ",.0f"), failed, closed))
    print()
EOF

if [[ -s "$HS_RESULTS" ]]; then
    python3 - "$HS_RESULTS" "$CLK_TCK" "$HS_TIME" "${PROXIES[*]}" <<'EOF'
import statistics, sys
path, tck, hs_time, proxies = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].split()
rows = {}
for line in open(path):
    px, mode, rnd, conns, secs, ticks, resumed = line.rstrip("\n").split("\t")
    conns, secs, ticks, resumed = int(conns), float(secs) or hs_time, int(ticks), int(resumed)
    if conns > 0:
        rows.setdefault((px, mode), []).append((conns / secs, ticks / tck * 1e6 / conns, resumed / conns))
print("== TLS handshakes: openssl s_time, one GET /size/100 per connection (median of rounds) ==")
hdr = "%-8s %-6s %10s %14s %9s" % ("proxy", "mode", "conns/s", "cpu us/conn", "resumed")
print(hdr)
print("-" * len(hdr))
med = {}
for mode in ("new", "reuse"):
    for px in proxies:
        rs = rows.get((px, mode))
        if not rs:
            continue
        med[px, mode] = [statistics.median(r[i] for r in rs) for i in range(3)]
        cps, cpu, res = med[px, mode]
        print("%-8s %-6s %10.0f %14.1f %8.0f%%" % (px, mode, cps, cpu, 100 * res))
for mode in ("new", "reuse"):
    if ("ringway", mode) not in med:
        continue
    parts = []
    for ref in ("nginx", "haproxy"):
        if (ref, mode) in med:
            a, b = med["ringway", mode], med[ref, mode]
            parts.append("vs %s: conns/s x%.2f, cpu/conn x%.2f" % (ref, a[0] / b[0], a[1] / b[1]))
    if parts:
        print("ringway %s: %s" % (mode, "; ".join(parts)))
print()
EOF
fi

if [[ -n "$VERIFY_NOTES" ]]; then
    echo "checks that failed:"
    printf '%s' "$VERIFY_NOTES"
fi
log "finished in $((SECONDS - T_START))s of load"
if [[ "$RINGWAY_BAD" -ne 0 ]]; then
    echo "RESULT: FAIL - ringway answered wrongly (non-2xx, socket errors, wrong body length, or exited)"
    exit 1
fi
[[ " ${PROXIES[*]} " == *" ringway "* ]] && echo "RESULT: OK - every ringway response was 2xx with the expected body length"
exit 0
