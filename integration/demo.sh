#!/usr/bin/env bash
# make demo: a local cluster (3 php-fpm nodes on 127.0.0.2-4:9000, memcached
# on 127.0.0.1:11211, Redis on 127.0.0.1:6379) with fpmlb in front on
# http://127.0.0.1:8080/. One node, web03, is misconfigured the classic way
# (`php_value[session.save_handler] = files` in its pool file), so the demo
# shows what fpmlb says about it and that it drains it.
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
"$HERE/cluster.sh" start --dir "$DIR" --net 0 --redis --php-value web03:session.save_handler=files
# shellcheck source=/dev/null
source "$DIR/cluster.env"

cat >"$DIR/fpmlb.yaml" <<YAML
# fpmlb demo config (written by integration/demo.sh)
listen: "127.0.0.1:8080"
document_root: $DOCROOT
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
  curl -c /tmp/jar -b /tmp/jar http://127.0.0.1:8080/session.php   # one session, every time
  http://127.0.0.1:9180/status                  # status page (drained web03 marked)
  curl http://127.0.0.1:9180/status.json
  curl http://127.0.0.1:9180/metrics
  $BIN check --config $DIR/fpmlb.yaml

Stop it all: make demo-stop
TXT
