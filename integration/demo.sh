#!/usr/bin/env bash
# make demo: a local cluster (3 php-fpm nodes on 127.0.0.2-4:9000, memcached
# on 127.0.0.1:11211, Redis on 127.0.0.1:6379) with fpmlb in front on
# http://127.0.0.1:8080/ and https://localhost:8443/ (HTTP/2; a local CA made
# here signs its certificate, and the script prints how to trust it). One node, web03, is misconfigured the classic way
# (`php_value[session.save_handler] = files` in its pool file), so the demo
# shows what fpmlb says about it and that it drains it. A small app
# (integration/demo-app: /app/ with a stylesheet, a script and a logo) shows
# fpmlb serving a site's static files itself from `static.root`.
#   integration/demo.sh        start (and print what to try)
#   integration/demo.sh stop   stop exactly what it started
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -P -- "$HERE/.." && pwd -P)
DIR=${FPMLB_DEMO_DIR:-/tmp/fpmlb-demo}
BIN=${FPMLB_BIN:-$REPO/target/release/fpmlb}

stop() {
    if [[ -f "$DIR/fpmlb.pid" ]]; then
        pid=$(cat "$DIR/fpmlb.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$DIR/fpmlb.pid"
    fi
    "$HERE/cluster.sh" stop --dir "$DIR"
}

if [[ "${1:-start}" == stop ]]; then
    stop
    exit 0
fi

[[ -x "$BIN" ]] || { echo "demo: $BIN is missing: run 'cargo build --release' (make demo does)" >&2; exit 1; }
mkdir -p "$DIR"
if [[ -f "$DIR/fpmlb.pid" ]] && kill -0 "$(cat "$DIR/fpmlb.pid")" 2>/dev/null; then
    echo "demo: already running (fpmlb pid $(cat "$DIR/fpmlb.pid")); 'make demo-stop' stops it"
    exit 0
fi
# The document root: integration/www (what the tests use) plus the app.
SITE="$DIR/site-src"
rm -rf -- "$SITE"
mkdir -p -- "$SITE"
cp -a -- "$HERE/www/." "$HERE/demo-app/." "$SITE/"
"$HERE/cluster.sh" start --dir "$DIR" --net 0 --redis --php-value web03:session.save_handler=files --docroot "$SITE"
# shellcheck source=/dev/null
source "$DIR/cluster.env"

# A local CA and a certificate for localhost signed by it, made once and
# kept (trust the CA once, it stays valid across demo runs).
TLS_DIR="$DIR/tls"
if [[ ! -f "$TLS_DIR/ca.pem" || ! -f "$TLS_DIR/localhost.pem" ]]; then
    mkdir -p "$TLS_DIR"
    chmod 700 "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=fpmlb demo CA" -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$TLS_DIR/localhost.key" -out "$TLS_DIR/localhost.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$TLS_DIR/ext"
    openssl x509 -req -in "$TLS_DIR/localhost.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 365 -extfile "$TLS_DIR/ext" -out "$TLS_DIR/localhost.pem" 2>/dev/null
    chmod 600 "$TLS_DIR"/*.key
fi

cat >"$DIR/fpmlb.yaml" <<YAML
# fpmlb demo config (written by integration/demo.sh)
listen:
  - "127.0.0.1:8080"
  - {address: "127.0.0.1:8443", tls: true}
tls:
  certificates:
    - {cert: $TLS_DIR/localhost.pem, key: $TLS_DIR/localhost.key}
  hsts: "max-age=300"
document_root: $DOCROOT
static:
  root: $DOCROOT     # the same code as on the nodes: files are served here
locations:
  - match: "^~ /app/"
    cache_control: "public, max-age=300"
session:
  save_handler: memcached
  save_path: "$MEMCACHED"
health:
  interval: 2s
  ping_path: /fpm-ping
  status_path: /fpm-status
  probe_script: /usr/share/fpmlb/probe.php
  session_interval: 5s
admin:
  listen: "127.0.0.1:9180"
backends:
  - name: web01
    address: "127.0.0.2:9000"
  - name: web02
    address: "127.0.0.3:9000"
  - name: web03
    address: "127.0.0.4:9000"
YAML

echo
echo "== fpmlb check (what fpmlb says about this cluster) =="
"$BIN" check --config "$DIR/fpmlb.yaml" || true
echo

setsid "$BIN" serve --config "$DIR/fpmlb.yaml" >"$DIR/fpmlb.log" 2>&1 </dev/null &
echo $! >"$DIR/fpmlb.pid"
for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then break; fi
    sleep 0.1
done
sleep 1
cat <<TXT
fpmlb is running (pid $(cat "$DIR/fpmlb.pid"), log $DIR/fpmlb.log) over 3 php-fpm nodes:

  curl http://127.0.0.1:8080/                   # hello from web01, web02 (web03 is drained)
  http://127.0.0.1:8080/app/                    # a page with CSS, JS and a logo from static.root
  curl -I http://127.0.0.1:8080/app/style.css   # served by fpmlb: ETag, Last-Modified, Cache-Control
  curl --cacert $TLS_DIR/ca.pem https://localhost:8443/env.php   # HTTPS, HTTP/2: "HTTPS":"on"
  curl -c /tmp/jar -b /tmp/jar http://127.0.0.1:8080/session.php   # one session, every time
  http://127.0.0.1:9180/status                  # status page (drained web03 marked)
  curl http://127.0.0.1:9180/status.json
  curl http://127.0.0.1:9180/metrics
  $BIN check --config $DIR/fpmlb.yaml

HTTPS uses a local CA made for this demo: $TLS_DIR/ca.pem. To trust it:
  curl:               --cacert $TLS_DIR/ca.pem (as above)
  this machine:       cp $TLS_DIR/ca.pem /usr/local/share/ca-certificates/fpmlb-demo.crt && update-ca-certificates
  chromium/firefox:   certutil -d sql:\$HOME/.pki/nssdb -A -t C,, -n fpmlb-demo -i $TLS_DIR/ca.pem
                      (certutil is in libnss3-tools), then open https://localhost:8443/env.php
Untrust it later: the same tools with -D -n fpmlb-demo, or remove the .crt and run update-ca-certificates.

Stop it all: make demo-stop
TXT
