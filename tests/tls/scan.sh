#!/usr/bin/env bash
# Scans ringway's TLS listener with two independent tools:
#   sslyze --mozilla_config=intermediate   (installed from PyPI into a venv under target/)
#   testssl.sh, failing on any finding rated MEDIUM or worse   (the Debian package)
#
# Usage: tests/tls/scan.sh path/to/ringway
#
# Starts the given ringway on a free loopback port with a certificate made
# here (a throwaway CA and a leaf for 127.0.0.1/localhost, openssl CLI), runs
# both scanners under time limits, stops ringway, and exits non-zero if either
# scanner objects or anything fails. Everything it starts is killed on exit.
set -euo pipefail

bin=${1:?usage: $0 path/to/ringway}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cd "$(dirname "$0")/../.."
root=$(pwd)

work=$(mktemp -d)
ringway_pid=
backend_pid=
cleanup() {
    for pid in $ringway_pid $backend_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

sudo_if_needed() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

echo "== tools"
venv=$root/target/tls-scan-venv
if [[ ! -x $venv/bin/sslyze ]]; then
    python3 -m venv "$venv"
    timeout 300 "$venv/bin/pip" install --quiet sslyze
fi
"$venv/bin/sslyze" --help >/dev/null
if ! command -v testssl >/dev/null; then
    sudo_if_needed timeout 300 apt-get install -y -q testssl.sh >/dev/null \
        || { sudo_if_needed timeout 300 apt-get update -q >/dev/null \
            && sudo_if_needed timeout 300 apt-get install -y -q testssl.sh >/dev/null; }
fi
testssl --version 2>/dev/null | grep -m1 -i "testssl" || true

echo "== certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -keyout "$work/ca.key" -out "$work/ca.crt" -subj "/CN=ringway scan CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/leaf.key" -out "$work/leaf.csr" -subj "/CN=localhost" 2>/dev/null
# A CRL location, as a public CA's certificate has one (testssl rates a
# certificate without any revocation information HIGH); nothing fetches it.
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,digitalSignature" "basicConstraints=CA:FALSE" \
    "crlDistributionPoints=URI:http://127.0.0.1/ringway-scan.crl" > "$work/leaf.ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
    -days 90 -sha256 -extfile "$work/leaf.ext" -out "$work/leaf.crt" 2>/dev/null
cat "$work/leaf.crt" "$work/ca.crt" > "$work/chain.crt"

echo "== backend"
# The page behind ringway sets the usual security headers, as a real
# application would (testssl checks them on the response it gets); ringway
# passes them through.
cat > "$work/backend.py" <<'PY'
import http.server, sys
class Page(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"scanned\n"
        self.send_response(200)
        for k, v in [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                     ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                     ("Content-Security-Policy", "default-src 'none'"),
                     ("Referrer-Policy", "no-referrer")]:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
python3 "$work/backend.py" > "$work/backend.port" &
backend_pid=$!
for _ in $(seq 1 50); do [[ -s $work/backend.port ]] && break; sleep 0.1; done
backend_port=$(head -n1 "$work/backend.port")
[[ -n $backend_port ]] || { echo "backend did not start" >&2; exit 1; }

cat > "$work/ringway.toml" <<TOML
[global]
workers = 2
drain_timeout = "1s"

[[server]]
listen = ["127.0.0.1:0"]
server_name = ["localhost"]
access_log = "off"
tls = { cert = "$work/chain.crt", key = "$work/leaf.key" }
hsts = { max_age = "365d", include_subdomains = true }

[[server.location]]
path = "/"
proxy_pass = "http://127.0.0.1:$backend_port"
TOML
"$bin" --check --config "$work/ringway.toml"

echo "== start ringway"
RUST_LOG=info NO_COLOR=1 "$bin" --config "$work/ringway.toml" 2> "$work/ringway.log" &
ringway_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/ringway.log" | head -n1)
    [[ -n $port ]] && break
    kill -0 "$ringway_pid" 2>/dev/null || { cat "$work/ringway.log"; echo "ringway exited" >&2; exit 1; }
    sleep 0.1
done
[[ -n $port ]] || { cat "$work/ringway.log"; echo "ringway did not report its port" >&2; exit 1; }
echo "ringway $ringway_pid on 127.0.0.1:$port"

failed=0

echo "== sslyze --mozilla_config=intermediate"
if timeout 300 "$venv/bin/sslyze" --mozilla_config=intermediate \
    --certinfo_ca_file "$work/ca.crt" "127.0.0.1:$port" > "$work/sslyze.txt" 2>&1; then
    echo "sslyze: compliant with Mozilla's intermediate configuration"
else
    failed=1
    echo "sslyze: FAILED"
fi
sed -n '/COMPLIANCE AGAINST/,$p' "$work/sslyze.txt"
grep -q "OK - Compliant" "$work/sslyze.txt" || { cat "$work/sslyze.txt"; failed=1; }

echo "== testssl.sh (MEDIUM or worse fails)"
# testssl's own exit status counts findings of every level; the JSON is
# read instead, for severities MEDIUM, HIGH and CRITICAL.
timeout 900 testssl --quiet --color 0 --warnings off --add-ca "$work/ca.crt" \
    --jsonfile "$work/testssl.json" "127.0.0.1:$port" > "$work/testssl.txt" 2>&1 || true
if [[ ! -s $work/testssl.json ]]; then
    cat "$work/testssl.txt"
    echo "testssl: no results" >&2
    failed=1
else
    if python3 - "$work/testssl.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
if isinstance(findings, dict):
    findings = findings.get("scanResult", findings.get("findings", []))
counts = {}
bad = []
for f in findings:
    sev = f.get("severity", "")
    counts[sev] = counts.get(sev, 0) + 1
    if sev in ("MEDIUM", "HIGH", "CRITICAL"):
        bad.append(f)
print("testssl findings by severity:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
for f in findings:
    if f.get("severity") == "LOW":
        print(f"  LOW {f.get('id')}: {f.get('finding')}")
for f in bad:
    print(f"  {f['severity']} {f.get('id')}: {f.get('finding')}")
sys.exit(1 if bad else 0)
PY
    then
        echo "testssl: nothing rated MEDIUM or worse"
    else
        echo "testssl: FAILED"
        failed=1
    fi
fi

if ! kill -0 "$ringway_pid" 2>/dev/null; then
    echo "ringway died during the scans" >&2
    cat "$work/ringway.log"
    failed=1
fi
if [[ $failed -ne 0 ]]; then
    echo "tls scan: FAILED"
    exit 1
fi
echo "tls scan: ok"
