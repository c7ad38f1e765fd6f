#!/usr/bin/env bash
# fpmlb side by side with nginx and HAProxy on the same php-fpm pools (what
# `make bench` runs). Loopback only, addresses 127.0.20.x, bounded in time.
set -euo pipefail

# shellcheck disable=SC2034 # used by lib.sh
PROG=bench.sh
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -P -- "$HERE/.." && pwd -P)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

usage() {
    cat <<'EOF'
usage: integration/bench.sh [--help]

Measures fpmlb, nginx (a FastCGI connection per request), nginx (keepalive 32,
fastcgi_keep_conn on) and HAProxy (fcgi-app, keep-conn, http-reuse always) in
front of the same three php-fpm pools (integration/cluster.sh --net 20,
--children 4, memcached sessions). For every case (script x concurrency) and
balancer: fresh pools, fresh balancer, a correctness check with curl, a warm-up,
then wrk -t2 -cN -dBENCH_SECONDS --timeout 5s --latency (HTTP/1.1, cleartext or
TLS), or for HTTP/2 h2load -t2 -c(N/8) -m8 -DBENCH_SECONDS (N streams at once,
over TLS, ALPN h2); the h2-1conn case is one HTTP/2 connection with N streams
(h2load -c1 -mN: a single client against the pools' caps; the balancers'
stream limits, 128 for fpmlb and nginx, 100 for HAProxy, bound what is
open at once).

Every balancer terminates TLS itself (a self-signed ECDSA P-256 certificate
made by this script with openssl): fpmlb a `tls: true` listener (rustls), nginx
`listen ssl http2`, HAProxy `bind ssl crt alpn h2,http/1.1`; TLS 1.3 with the
clients' default suites. Compressed cases send Accept-Encoding: CODING for the
64 KiB HTML page (/html.php): gzip is compared with nginx (gzip_comp_level =
BENCH_GZIP_LEVEL) and HAProxy (libslz); br and zstd run on fpmlb alone.

Static file cases (static1k, static100k, static10m: a file of 1 KiB, 100 KiB,
10 MiB in the document root, type application/octet-stream) compare fpmlb
(static.root at the document root) with nginx (root, sendfile on) only: HAProxy
serves no files. nginx-ka also has open_file_cache (max=1000, valid 1 s: what
fpmlb's static.open_file_cache does by default; nginx's default is off), so
the static cases compare with nginx as shipped and nginx so tuned.

Balancers get 2 threads/workers each (fpmlb: tokio multi-thread runtime, one
thread per CPU): nginx --workers 2, HAProxy --threads 2.

Environment:
  BENCH_SECONDS    measured seconds per run (default 10)
  BENCH_WARMUP     warm-up seconds per run (default 2)
  BENCH_CASES      cases to run, comma separated SCRIPT[:CONC] (default all):
                   scripts hello, session, 64k, 1m (cleartext HTTP/1.1),
                   tls-hello, tls-64k (HTTPS, HTTP/1.1), h2-hello, h2-64k
                   (HTTPS, HTTP/2), h2-1conn (hello, one HTTP/2 connection
                   of N streams), gzip (64 KiB HTML, gzip); br, zstd (the
                   same page, fpmlb only; not in "all"); concurrency 32, 256
                   (or any number); static files static1k,
                   static100k, static10m (fpmlb and nginx only); e.g.
                   BENCH_CASES=hello:32 or
                   BENCH_CASES=hello,1m:256
  BENCH_GZIP_LEVEL gzip level of fpmlb and nginx in the gzip case (default 5,
                   fpmlb's default)
  BENCH_FPMLB_YAML more YAML for fpmlb's config (e.g. compression levels:
                   "compression: {levels: {br: 5}}")
  BENCH_CASES=none skips the wrk cases (only BENCH_EXTRA's run).
  BENCH_BALANCERS  comma separated subset of fpmlb,fpmlb-1,nginx,nginx-ka,haproxy
                   (fpmlb-1: fpmlb with `workers: 1`)
  BENCH_EXTRA      the cases beyond wrk (default all): comma separated subset of
                   rate (fixed rate, hey), pinned (a worker held by an outside
                   client), pair (two fpmlb over the same pools), beside (fpmlb
                   beside HAProxy keep-conn), idle (idle keep-alive clients, RSS,
                   cleartext and TLS),
                   h2 (h2c, h2load); or none
  BENCH_RATE       req/s of the fixed-rate runs (pair and beside give each
                   balancer half); by default half the slowest of fpmlb, nginx
                   and HAProxy on hello at BENCH_RATE_CONC connections in this
                   run's wrk cases (a rate every one of them sustains), or 1600
                   when those did not run; BENCH_RATE_CONC connections (32),
                   BENCH_RATE_SECONDS (10)
  BENCH_IDLE       idle clients (default 10000)
  BENCH_H2_CONC, BENCH_H2_STREAMS   h2load -c and -m (16, 8)
  BENCH_CHILDREN   pm.max_children per node (default 4; fpmlb max_conns and
                   HAProxy maxconn follow it)
  BENCH_DIR        work directory (default /tmp/fpmlb-bench)
  BENCH_OUT        raw results as JSON (default BENCH_DIR/results.json)
  BENCH_MD         the tables as Markdown (default BENCH_DIR/results.md)
  FPMLB_BIN        fpmlb binary (default target/release/fpmlb; it is copied
                   into BENCH_DIR first so a rebuild during the run changes nothing)

Columns: req/s (all responses), p50/p99 latency (wrk), errors (non-2xx +
socket errors incl. timeouts), CPU seconds of the balancer's processes
(utime+stime from /proc, all nginx workers) per 100k requests, peak RSS
(VmHWM, max over the balancer's processes) at the end of the run. For fpmlb:
ratios against the best peer of the case (highest req/s among the peers
without errors, else highest req/s).
EOF
}

case ${1:-} in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
esac

# ------------------------------------------------------------------ settings

RUN_SECONDS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CHILDREN=${BENCH_CHILDREN:-4}
BENCH_DIR=${BENCH_DIR:-/tmp/fpmlb-bench}
NODES=3
NET=20
LB_IP=127.0.$NET.1
WRK_THREADS=2
WRK_TIMEOUT=5s
H2_STREAMS=8 # h2load: streams per connection
BAL_THREADS=2 # fpmlb: tokio multi-thread = one worker thread per CPU on the reference box

uint_in "$RUN_SECONDS" 1 3600 || die "BENCH_SECONDS must be 1..3600"
uint_in "$WARMUP" 0 60 || die "BENCH_WARMUP must be 0..60"
uint_in "$CHILDREN" 1 1000 || die "BENCH_CHILDREN must be 1..1000"

ALL_SCRIPTS=(hello session 64k 1m static1k static100k static10m tls-hello tls-64k h2-hello h2-64k h2-1conn gzip)
GZIP_LEVEL=${BENCH_GZIP_LEVEL:-5}
FPMLB_YAML=${BENCH_FPMLB_YAML:-}
uint_in "$GZIP_LEVEL" 1 9 || die "BENCH_GZIP_LEVEL must be 1..9"
ALL_CONC=(32 256)
ALL_BALANCERS=(fpmlb fpmlb-1 nginx nginx-ka haproxy)

script_path() {
    case $1 in
        hello | tls-hello | h2-hello | h2-1conn) echo /hello.php ;;
        session) echo /session.php ;;
        64k | tls-64k | h2-64k) echo '/big.php?bytes=65536' ;;
        1m) echo '/big.php?bytes=1048576' ;;
        gzip | br | zstd) echo '/html.php?bytes=65536' ;;
        static1k) echo /static/1k.bin ;;
        static100k) echo /static/100k.bin ;;
        static10m) echo /static/10m.bin ;;
        *) return 1 ;;
    esac
}

# script_transport SCRIPT: plain (HTTP/1.1), tls (HTTPS, HTTP/1.1), h2 (HTTPS, HTTP/2).
script_transport() {
    case $1 in
        tls-*) echo tls ;;
        h2-*) echo h2 ;;
        *) echo plain ;;
    esac
}

# script_coding SCRIPT: the Accept-Encoding of a compressed case, else nothing.
script_coding() {
    case $1 in
        gzip | br | zstd) echo "$1" ;;
        *) echo "" ;;
    esac
}

# Whether balancer B runs case SCRIPT: br and zstd are fpmlb's alone
# (Debian's nginx and HAProxy have neither).
runs_case() {
    case $2 in
        br | zstd) [[ "$1" == fpmlb ]] ;;
        static*) serves_files "$1" ;;
        *) return 0 ;;
    esac
}

# Expected body size for the correctness check (empty: only non-empty).
script_size() {
    case $1 in
        hello | tls-hello | h2-hello | h2-1conn) echo 6 ;;
        64k | tls-64k | h2-64k | gzip | br | zstd) echo 65536 ;;
        1m) echo 1048576 ;;
        static1k) echo 1024 ;;
        static100k) echo 102400 ;;
        static10m) echo 10485760 ;;
        *) echo "" ;;
    esac
}

# is_static SCRIPT: whether the case is a file fpmlb and nginx serve themselves.
is_static() { [[ $1 == static* ]]; }

# serves_files BALANCER: whether it can serve a static file case.
serves_files() { [[ $1 == fpmlb* || $1 == nginx || $1 == nginx-ka ]]; }

bal_port() {
    case $1 in
        fpmlb | fpmlb-1 | fpmlb-a | fpmlb-beside) echo 8081 ;;
        nginx) echo 8082 ;;
        nginx-ka) echo 8083 ;;
        haproxy | haproxy-beside) echo 8084 ;;
        fpmlb-b) echo 8085 ;;
        fpmlb-tls) echo 8086 ;;
    esac
}

# The TLS port of each balancer.
bal_tls_port() { echo $(($(bal_port "$1") + 360)); }

# Cases: "SCRIPT:CONC" words.
CASES=()
if [[ "${BENCH_CASES:-}" == none ]]; then
    : # only the issue-11 cases (BENCH_EXTRA)
elif [[ -z "${BENCH_CASES:-}" || "${BENCH_CASES}" == all ]]; then
    for s in "${ALL_SCRIPTS[@]}"; do for c in "${ALL_CONC[@]}"; do CASES+=("$s:$c"); done; done
else
    for item in ${BENCH_CASES//,/ }; do
        s=${item%%:*}
        script_path "$s" >/dev/null || die "BENCH_CASES: unknown script '$s' (hello, session, 64k, 1m, static1k, static100k, static10m, tls-hello, tls-64k, h2-hello, h2-64k, h2-1conn, gzip, br, zstd)"
        if [[ "$item" == *:* ]]; then
            c=${item#*:}
            uint_in "$c" "$WRK_THREADS" 100000 || die "BENCH_CASES: bad concurrency in '$item'"
            CASES+=("$s:$c")
        else
            for c in "${ALL_CONC[@]}"; do CASES+=("$s:$c"); done
        fi
    done
fi
((${#CASES[@]})) || [[ "${BENCH_CASES:-}" == none ]] || die "BENCH_CASES selects nothing"

BALANCERS=()
if [[ -z "${BENCH_BALANCERS:-}" || "${BENCH_BALANCERS}" == all ]]; then
    BALANCERS=("${ALL_BALANCERS[@]}")
else
    for b in ${BENCH_BALANCERS//,/ }; do
        case $b in fpmlb | fpmlb-1 | nginx | nginx-ka | haproxy) BALANCERS+=("$b") ;; *) die "BENCH_BALANCERS: unknown balancer '$b' (fpmlb, fpmlb-1, nginx, nginx-ka, haproxy)" ;; esac
    done
fi
((${#BALANCERS[@]})) || die "BENCH_BALANCERS selects nothing"

# ---------------------------------------------- settings of the issue-11 cases
# (the cases beyond wrk's closed loop; see "issue-11 cases" below)
ALL_EXTRA=(rate pinned pair beside idle h2)
EXTRA=()
case ${BENCH_EXTRA:-all} in
    all) EXTRA=("${ALL_EXTRA[@]}") ;;
    none) ;;
    *)
        for x in ${BENCH_EXTRA//,/ }; do
            case " ${ALL_EXTRA[*]} " in *" $x "*) EXTRA+=("$x") ;; *) die "BENCH_EXTRA: unknown case '$x' (${ALL_EXTRA[*]}, all, none)" ;; esac
        done
        ;;
esac
RATE=${BENCH_RATE:-1600}            # req/s of the fixed-rate runs, all balancers alike (see auto_rate)
RATE_CONC=${BENCH_RATE_CONC:-32}    # hey workers (connections); RATE must divide by it
RATE_SECONDS=${BENCH_RATE_SECONDS:-10}
IDLE_COUNT=${BENCH_IDLE:-10000}     # idle keep-alive clients
H2_CONC=${BENCH_H2_CONC:-16}        # h2load connections ...
H2_STREAMS=${BENCH_H2_STREAMS:-8}   # ... and streams per connection
uint_in "$RATE" 10 1000000 || die "BENCH_RATE must be 10..1000000"
uint_in "$RATE_CONC" 1 10000 || die "BENCH_RATE_CONC must be 1..10000"
((RATE % RATE_CONC == 0 && RATE / RATE_CONC > 0)) || die "BENCH_RATE ($RATE) must be a multiple of BENCH_RATE_CONC ($RATE_CONC)"
uint_in "$RATE_SECONDS" 1 600 || die "BENCH_RATE_SECONDS must be 1..600"
uint_in "$IDLE_COUNT" 1 15000 || die "BENCH_IDLE must be 1..15000 (file limits)"
BAL_EXTRA_ARGS=()
HELPER_PIDS=""

need_cmd wrk h2load openssl curl python3 ss ps flock timeout getconf
((${#EXTRA[@]} == 0)) || need_cmd hey
find_bin nginx >/dev/null
find_bin haproxy >/dev/null
find_php_fpm >/dev/null
find_bin memcached >/dev/null

FPMLB_SRC=${FPMLB_BIN:-$REPO/target/release/fpmlb}
[[ -x "$FPMLB_SRC" ]] || die "$FPMLB_SRC not found; run: cargo build --release (or make bench)"

mkdir -p -- "$BENCH_DIR"
BENCH_DIR=$(cd -P -- "$BENCH_DIR" && pwd -P)
OUT_JSON=${BENCH_OUT:-$BENCH_DIR/results.json}
OUT_MD=${BENCH_MD:-$BENCH_DIR/results.md}
W=$BENCH_DIR/work
CL_DIR=$W/cluster
LOGS=$W/logs
DB=$W/runs.jsonl
REPORT=$HERE/bench/report.py
EXTRA_PY=$HERE/bench/extra.py
EXTRA_DB=$W/extra.jsonl
LUA=$HERE/bench/wrk-report.lua
CLK=$(getconf CLK_TCK)

exec 8>"$BENCH_DIR/.lock"
flock -n 8 || die "another bench.sh is running with $BENCH_DIR (lock $BENCH_DIR/.lock)"

# ------------------------------------------------------------- start / stop

CLUSTER_UP=0
CUR_BAL=""

fpmlb_exe() { readlink -f "$W/fpmlb-bin"; }

stop_balancer() {
    local b=$1 d=$W/$1 pid
    case $b in
        fpmlb*)
            pid=$(read_pidfile "$d/fpmlb.pid")
            if [[ -n "$pid" ]]; then
                STOP_TIMEOUT=10 stop_pid fpmlb "$pid" "$(fpmlb_exe)" TERM 2>>"$LOGS/stop.log" || true
            fi
            rm -f -- "$d/fpmlb.pid"
            ;;
        nginx*)
            if [[ -d "$d" ]]; then "$HERE/nginx.sh" stop --dir "$d" >>"$LOGS/stop.log" 2>&1 || true; fi
            ;;
        haproxy*)
            if [[ -d "$d" ]]; then "$HERE/haproxy.sh" stop --dir "$d" >>"$LOGS/stop.log" 2>&1 || true; fi
            ;;
    esac
}

stop_cluster() {
    "$HERE/cluster.sh" stop --dir "$CL_DIR" >>"$LOGS/stop.log" 2>&1 || true
    CLUSTER_UP=0
}

cleanup() {
    local rc=$?
    trap '' INT TERM
    local b
    for b in $CUR_BAL; do
        stop_balancer "$b"
    done
    CUR_BAL=""
    stop_helpers
    if ((CLUSTER_UP)); then
        stop_cluster
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'info "interrupted; stopping what was started"; exit 130' INT TERM HUP

start_cluster() {
    CLUSTER_UP=1 # from here on, stop it on exit (cluster.sh stops a partial start itself)
    if ! "$HERE/cluster.sh" start --dir "$CL_DIR" --net "$NET" --nodes "$NODES" --children "$CHILDREN" \
        --session memcached >"$LOGS/cluster-start.log" 2>&1 8>&-; then
        cat "$LOGS/cluster-start.log" >&2
        die "cluster.sh start failed"
    fi
    # The static cases' files, in the document root on this host (where
    # nginx and fpmlb's static.root read them); random bytes, so nothing
    # compresses them on the way.
    local docroot
    # shellcheck disable=SC1091,SC2153
    docroot=$(source "$CL_DIR/cluster.env" && printf '%s' "$DOCROOT")
    mkdir -p -- "$docroot/static"
    head -c 1024 /dev/urandom >"$docroot/static/1k.bin"
    head -c 102400 /dev/urandom >"$docroot/static/100k.bin"
    head -c 10485760 /dev/urandom >"$docroot/static/10m.bin"
    chmod -R a+rX -- "$docroot/static"
}

# write_fpmlb_config FILE NAME: the config of fpmlb variant NAME (fpmlb: one
# runtime thread per CPU; fpmlb-1: `workers: 1`; fpmlb-tls: a TLS listener).
write_fpmlb_config() {
    local cfg=$1 name=${2:-fpmlb} script=${3:-} docroot i
    # shellcheck disable=SC1091,SC2153
    docroot=$(source "$CL_DIR/cluster.env" && printf '%s' "$DOCROOT")
    {
        echo "# generated by integration/bench.sh"
        if [[ "$name" == fpmlb-tls ]]; then
            # The idle-clients case over TLS: one TLS listener.
            echo "listen: [{address: \"$LB_IP:$(bal_port "$name")\", tls: true}]"
        else
            echo "listen:"
            echo "  - \"$LB_IP:$(bal_port "$name")\""
            echo "  - {address: \"$LB_IP:$(bal_tls_port "$name")\", tls: true}"
        fi
        echo "tls:"
        echo "  certificates:"
        echo "    - {cert: \"$TLS_CERT\", key: \"$TLS_KEY\"}"
        echo "compression:"
        echo "  levels: {gzip: $GZIP_LEVEL}"
        [[ "$name" == fpmlb-1 ]] && echo "workers: 1"
        echo "document_root: \"$docroot\""
        if is_static "$script"; then
            echo "static:"
            echo "  root: \"$docroot\""
        fi
        echo "log:"
        echo "  level: warn"
        echo "  access_log: false"
        echo "admin:"
        echo "  listen: off"
        echo "timeouts:"
        echo "  # the bench stops fpmlb right after wrk; nothing is in flight worth waiting for"
        echo "  shutdown_grace: 2s"
        echo "backends:"
        for ((i = 1; i <= NODES; i++)); do
            printf '  - name: web%02d\n    address: "127.0.%d.%d:9000"\n    max_conns: %d\n' "$i" "$NET" "$((i + 1))" "$CHILDREN"
        done
        [[ -z "$FPMLB_YAML" ]] || printf '%s\n' "$FPMLB_YAML"
    } >"$cfg"
}

fpmlb_ready() {
    local pid
    pid=$(read_pidfile "$1/fpmlb.pid")
    [[ -n "$pid" ]] && pid_alive "$pid" "$2" && is_listening "$3" && is_listening "$4"
}

# start_balancer NAME SCRIPT: returns 1 (with the reason in $LOGS) if it did not start.
start_balancer() {
    local b=$1 script=${2:-} d=$W/$1 listen tls_listen
    listen=$LB_IP:$(bal_port "$b")
    tls_listen=$LB_IP:$(bal_tls_port "$b")
    # fpmlb-tls (the idle case over TLS) has its one listener, TLS.
    [[ "$b" == fpmlb-tls ]] && tls_listen=$listen
    rm -rf -- "$d"
    mkdir -p -- "$d"
    CUR_BAL="$CUR_BAL $b"
    case $b in
        fpmlb*)
            write_fpmlb_config "$d/fpmlb.yaml" "$b" "$script"
            if ! "$W/fpmlb-bin" config test -c "$d/fpmlb.yaml" >"$d/config-test.out" 2>&1; then
                cat "$d/config-test.out" >&2
                return 1
            fi
            local busy
            if ! busy=$(check_free "$listen"); then
                printf '%s\n' "$busy" >&2
                return 1
            fi
            setsid "$W/fpmlb-bin" serve -c "$d/fpmlb.yaml" </dev/null >>"$d/fpmlb.log" 2>&1 8>&- &
            echo "$!" >"$d/fpmlb.pid"
            if ! wait_for "fpmlb on $listen and $tls_listen" 10 fpmlb_ready "$d" "$(fpmlb_exe)" "$listen" "$tls_listen"; then
                tail_file "$d/fpmlb.log"
                return 1
            fi
            ;;
        nginx)
            "$HERE/nginx.sh" start --dir "$d" --listen "$listen" --cluster "$CL_DIR" --workers "$BAL_THREADS" \
                --tls-listen "$tls_listen" --cert "$TLS_CERT" --key "$TLS_KEY" --gzip "$GZIP_LEVEL" \
                "${BAL_EXTRA_ARGS[@]}" >"$d/start.log" 2>&1 8>&- || { cat "$d/start.log" >&2; return 1; }
            ;;
        nginx-ka)
            "$HERE/nginx.sh" start --dir "$d" --listen "$listen" --cluster "$CL_DIR" --workers "$BAL_THREADS" \
                --tls-listen "$tls_listen" --cert "$TLS_CERT" --key "$TLS_KEY" --gzip "$GZIP_LEVEL" \
                --keepalive 32 --open-file-cache "${BAL_EXTRA_ARGS[@]}" >"$d/start.log" 2>&1 8>&- || { cat "$d/start.log" >&2; return 1; }
            ;;
        haproxy | haproxy-beside)
            local maxconn=$CHILDREN
            [[ "$b" == haproxy-beside ]] && maxconn=$(((CHILDREN + 1) / 2))
            "$HERE/haproxy.sh" start --dir "$d" --listen "$listen" --cluster "$CL_DIR" --threads "$BAL_THREADS" \
                --tls-listen "$tls_listen" --cert "$TLS_PEM" --compress \
                --maxconn "$maxconn" "${BAL_EXTRA_ARGS[@]}" >"$d/start.log" 2>&1 8>&- || { cat "$d/start.log" >&2; return 1; }
            ;;
    esac
}

# balancer_pids NAME: the main pid and its children (nginx workers).
balancer_pids() {
    local b=$1 d=$W/$1 pid
    case $b in
        fpmlb*) pid=$(read_pidfile "$d/fpmlb.pid") ;;
        nginx*) pid=$(read_pidfile "$d/nginx.pid") ;;
        haproxy*) pid=$(read_pidfile "$d/haproxy.pid") ;;
    esac
    [[ -n "$pid" ]] || return 0
    echo "$pid"
    ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ' || true
}

# cpu_ticks PID...: sum of utime+stime (clock ticks).
cpu_ticks() {
    local p s total=0
    local -a f
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# host_ticks: the whole host's busy and total CPU ticks (all CPUs, from
# /proc/stat). With the balancer's own, they tell whether a run was bound
# by the machine's CPU, which then caps what any balancer can reach.
host_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# peak_rss PID...: max VmHWM in KiB.
peak_rss() {
    local p v max=0
    for p in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        [[ -n "$v" ]] && ((v > max)) && max=$v
    done
    echo "$max"
}

# log_findings NAME: warnings/errors the balancer logged during the run.
log_findings() {
    local b=$1 d=$W/$1 f n first
    case $b in
        fpmlb*) f=$d/fpmlb.log ;;
        nginx*) f=$d/error.log ;;
        haproxy*) f=$d/haproxy.out ;;
    esac
    [[ -s "$f" ]] || return 0
    n=$(grep -cEv '\[notice\]|^\s*$' "$f" || true)
    ((n > 0)) || return 0
    first=$(grep -m 1 -Ev '\[notice\]|^\s*$' "$f" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200)
    printf '%d line(s) in %s, first: %s' "$n" "$(basename "$f")" "$first"
}

# check_response URL SCRIPT: one request with curl (HTTP/2 for h2 cases, the
# body decoded for compressed ones); prints a problem or nothing.
check_response() {
    local url=$1 s=$2 out code size want version coding got_coding body=$W/check.body
    local args=(-sS -k -o "$body" --max-time 10)
    coding=$(script_coding "$s")
    [[ -z "$coding" ]] || args+=(--compressed -H "Accept-Encoding: $coding")
    [[ "$(script_transport "$s")" == h2 ]] && args+=(--http2)
    out=$(curl "${args[@]}" -w '%{http_code} %{size_download} %{http_version} %header{content-encoding}' "$url" 2>&1) || {
        echo "curl check failed: $out"
        return 0
    }
    read -r code size version got_coding <<<"$out"
    # size_download counts the bytes on the wire: the decoded body's size
    # is the file's.
    size=$(stat -c %s -- "$body" 2>/dev/null || echo 0)
    rm -f -- "$body"
    want=$(script_size "$s")
    if [[ "$code" != 200 ]]; then
        echo "curl check: HTTP $code"
    elif [[ "$(script_transport "$s")" == h2 && "$version" != 2 ]]; then
        echo "curl check: HTTP/$version, not HTTP/2"
    elif [[ "$coding" != "${got_coding:-}" ]]; then
        echo "curl check: Content-Encoding '${got_coding:-}', expected '$coding'"
    elif [[ -n "$want" && "$size" != "$want" ]]; then
        echo "curl check: body of $size bytes, expected $want"
    elif [[ "$size" == 0 ]]; then
        echo "curl check: empty body"
    fi
}

# load_tool TRANSPORT: the load generator of a transport.
load_tool() { if [[ "$1" == h2 ]]; then echo h2load; else echo wrk; fi; }

# load_run SECONDS URL CONC TRANSPORT CODING KIND SCRIPT: one bounded load
# run; wrk (with the report script when KIND is measured), or h2load for
# HTTP/2: CONC streams at once as CONC/8 connections of 8 streams each, or
# for h2-1conn one connection of CONC streams.
load_run() {
    local secs=$1 url=$2 conc=$3 transport=$4 coding=$5 kind=$6 script=$7 hdr=()
    [[ -z "$coding" ]] || hdr=(-H "Accept-Encoding: $coding")
    if [[ "$transport" == h2 ]]; then
        local clients=$((conc / H2_STREAMS)) streams=$H2_STREAMS threads=$WRK_THREADS
        ((clients >= 1)) || clients=1
        [[ "$script" != h2-1conn ]] || { clients=1 streams=$conc threads=1; }
        timeout -k 5 $((secs + 30)) h2load -t"$threads" -c"$clients" -m"$streams" -D"$secs" \
            "${hdr[@]}" "$url"
    elif [[ "$kind" == measured ]]; then
        timeout -k 5 $((secs + 30)) wrk -t"$WRK_THREADS" -c"$conc" -d"${secs}s" --timeout "$WRK_TIMEOUT" \
            --latency -s "$LUA" "${hdr[@]}" "$url"
    else
        timeout -k 5 $((secs + 20)) wrk -t"$WRK_THREADS" -c"$conc" -d"${secs}s" --timeout "$WRK_TIMEOUT" \
            "${hdr[@]}" "$url"
    fi
}

# make_certificate DIR: a self-signed ECDSA P-256 certificate for the
# balancers' TLS listeners (the load generators do not verify it).
make_certificate() {
    local dir=$1
    mkdir -p -- "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test,IP:$LB_IP" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" >"$dir/openssl.out" 2>&1 ||
        { cat "$dir/openssl.out" >&2; die "openssl could not make the bench certificate"; }
    cat "$dir/cert.pem" "$dir/key.pem" >"$dir/haproxy.pem"
    chmod a+r "$dir"/*.pem
}

# ------------------------------------------------------------------ the run

# Leftovers of an earlier run that was killed hard.
mkdir -p -- "$W"
mkdir -p -- "$LOGS"
if [[ -f "$CL_DIR/cluster.components" ]]; then
    info "stopping a cluster left over in $CL_DIR"
    stop_cluster
fi
for b in "${ALL_BALANCERS[@]}"; do
    if [[ -d "$W/$b" ]]; then
        if [[ "$b" == fpmlb && ! -x "$W/fpmlb-bin" ]]; then rm -f -- "$W/$b/fpmlb.pid"; fi
        stop_balancer "$b"
    fi
done
rm -rf -- "$LOGS" "$DB" "$W/wrk" "$EXTRA_DB" "$W/extra"
mkdir -p -- "$LOGS" "$W/wrk" "$W/extra"

if [[ -x "$FPMLB_SRC" ]]; then
    cp -f -- "$FPMLB_SRC" "$W/fpmlb-bin.new"
    mv -f -- "$W/fpmlb-bin.new" "$W/fpmlb-bin"
fi

make_certificate "$W/tls"
TLS_CERT=$W/tls/cert.pem
TLS_KEY=$W/tls/key.pem
TLS_PEM=$W/tls/haproxy.pem

T0=$SECONDS
nruns=0
for case_ in "${CASES[@]}"; do
    for b in "${BALANCERS[@]}"; do
        if runs_case "$b" "${case_%%:*}"; then nruns=$((nruns + 1)); fi
    done
done
info "$nruns runs (${#CASES[@]} cases x ${#BALANCERS[@]} balancers), ~$((nruns * (RUN_SECONDS + WARMUP + 6) / 60 + 1)) min, then ${EXTRA[*]:-no other cases} (~$((${#EXTRA[@]} * (RATE_SECONDS + 8) * 4 / 60 + 1)) min); results in $OUT_MD and $OUT_JSON"

for case_ in "${CASES[@]}"; do
    s=${case_%%:*}
    c=${case_#*:}
    path=$(script_path "$s")
    echo
    echo "== $s @ $c connections ($path) =="
    transport=$(script_transport "$s")
    coding=$(script_coding "$s")
    for b in "${BALANCERS[@]}"; do
        runs_case "$b" "$s" || continue
        notes=()
        tag="$b-$s-$c"
        start_cluster
        if ! start_balancer "$b" "$s" 2>"$LOGS/$tag.start-error"; then
            cat "$LOGS/$tag.start-error" >&2
            info "$b did not start; recording an empty run"
            : >"$W/wrk/$tag.out"
            python3 "$REPORT" add --db "$DB" --balancer "$b" --script "$s" --path "$path" --conc "$c" \
                --wrk "$W/wrk/$tag.out" --note "did not start: $(tr '\n' ' ' <"$LOGS/$tag.start-error" | cut -c1-200)"
            stop_balancer "$b"
            CUR_BAL=""
            stop_cluster
            continue
        fi
        [[ -s "$LOGS/$tag.start-error" ]] || rm -f -- "$LOGS/$tag.start-error"
        if [[ "$transport" == plain ]]; then
            url="http://$LB_IP:$(bal_port "$b")$path"
        else
            url="https://$LB_IP:$(bal_tls_port "$b")$path"
        fi
        problem=$(check_response "$url" "$s")
        [[ -z "$problem" ]] || { notes+=("$problem"); info "$b: $problem"; }
        if ((WARMUP > 0)); then
            load_run "$WARMUP" "$url" "$c" "$transport" "$coding" warmup "$s" >"$W/wrk/$tag.warmup" 2>&1 ||
                notes+=("warm-up $(load_tool "$transport") exited with $?")
        fi
        mapfile -t pids < <(balancer_pids "$b")
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        t_before=$(cpu_ticks "${pids[@]}")
        h_before=$(host_ticks)
        rc=0
        load_run "$RUN_SECONDS" "$url" "$c" "$transport" "$coding" measured "$s" >"$W/wrk/$tag.out" 2>&1 || rc=$?
        h_after=$(host_ticks)
        t_after=$(cpu_ticks "${pids[@]}")
        mapfile -t pids_end < <(balancer_pids "$b")
        if [[ "${pids[*]}" != "${pids_end[*]}" ]]; then
            notes+=("balancer processes changed during the run (${pids[*]} -> ${pids_end[*]:-none})")
        fi
        rss=$(peak_rss "${pids_end[@]}")
        ((rc == 0)) || notes+=("$(load_tool "$transport") exited with $rc")
        finding=$(log_findings "$b")
        [[ -z "$finding" ]] || notes+=("$finding")
        note_args=()
        for n in "${notes[@]}"; do note_args+=(--note "$n"); done
        python3 "$REPORT" add --db "$DB" --balancer "$b" --script "$s" --path "$path" --conc "$c" \
            --transport "$transport" --coding "$coding" --wrk "$W/wrk/$tag.out" --ticks-before "$t_before" --ticks-after "$t_after" --clk "$CLK" \
            --host-before "$h_before" --host-after "$h_after" --rss-kb "$rss" --load "$load" "${note_args[@]}"
        # Keep the balancer's log of this run.
        for f in fpmlb.log error.log haproxy.out; do
            [[ -f "$W/$b/$f" ]] && cp -f -- "$W/$b/$f" "$LOGS/$tag.$f"
        done
        t_stop=$SECONDS
        stop_balancer "$b"
        CUR_BAL=""
        stop_cluster
        if ((SECONDS - t_stop > 5)); then
            info "$b: stopping the balancer and the pools took $((SECONDS - t_stop)) s"
        fi
    done
    echo
    python3 "$REPORT" case --db "$DB" --script "$s" --conc "$c"
done

# ================================================================ issue-11 cases
# Beyond wrk's closed loop, each in its own function, each run bounded in
# time (timeout -k): a fixed-rate latency run (hey, every balancer at the
# same rate), a php-fpm worker pinned by an outside client, two fpmlb over
# the same pools, fpmlb beside HAProxy keep-conn, idle keep-alive clients
# (RSS per connection) and HTTP/2 over cleartext (h2load). Results go to
# $EXTRA_DB through bench/extra.py, which prints their tables.

# stop_helpers: the load generators and holders these cases started.
stop_helpers() {
    local p
    for p in $HELPER_PIDS; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    HELPER_PIDS=""
}

# extra_start NAME...: a fresh cluster and these balancers; 1 if one did not start.
extra_start() {
    local b
    start_cluster
    for b in "$@"; do
        if ! start_balancer "$b" 2>"$LOGS/extra-$b.start-error"; then
            cat "$LOGS/extra-$b.start-error" >&2
            info "$b did not start"
            return 1
        fi
    done
}

# extra_stop: the balancers, helpers and cluster of the case.
extra_stop() {
    local b
    stop_helpers
    for b in $CUR_BAL; do
        for f in fpmlb.log error.log haproxy.out; do
            [[ -f "$W/$b/$f" ]] && cp -f -- "$W/$b/$f" "$LOGS/extra-$EXTRA_CASE-$b.$f"
        done
        stop_balancer "$b"
    done
    CUR_BAL=""
    stop_cluster
}

# hey_run CASE NAME URL RATE CONC [--no-record]: hey at RATE req/s over CONC
# connections for RATE_SECONDS into $W/extra/CASE-NAME.csv.
hey_run() {
    local case_=$1 name=$2 url=$3 rate=$4 conc=$5 out
    out=$W/extra/$case_-$name.csv
    timeout -k 5 $((RATE_SECONDS + 30)) hey -z "${RATE_SECONDS}s" -c "$conc" -q $((rate / conc)) -t 10 \
        -o csv "$url" >"$out" 2>"$out.err" || echo "hey exited with $?" >>"$out.err"
}

# hey_record CASE NAME RATE TICKS_BEFORE TICKS_AFTER
hey_record() {
    local case_=$1 name=$2 rate=$3 notes=() finding
    finding=$(log_findings "$name")
    [[ -z "$finding" ]] || notes+=(--note "$finding")
    [[ -s "$W/extra/$case_-$name.csv.err" ]] && notes+=(--note "$(head -c 200 "$W/extra/$case_-$name.csv.err")")
    python3 "$EXTRA_PY" hey --db "$EXTRA_DB" --case "$case_" --balancer "$name" \
        --csv "$W/extra/$case_-$name.csv" --seconds "$RATE_SECONDS" --rate "$rate" \
        --ticks-before "$4" --ticks-after "$5" --clk "$CLK" "${notes[@]}"
}

url_of() { echo "http://$LB_IP:$(bal_port "$1")$2"; }

# The fixed-rate latency run: hello at RATE req/s, a fresh cluster and a
# warm-up per balancer.
case_rate() {
    local b pids t0 t1
    echo
    echo "== fixed rate: hello at $RATE req/s over $RATE_CONC connections, ${RATE_SECONDS}s (hey) =="
    for b in fpmlb fpmlb-1 nginx nginx-ka haproxy; do
        EXTRA_CASE=rate
        if extra_start "$b"; then
            timeout -k 5 30 hey -z 2s -c "$RATE_CONC" -q $((RATE / RATE_CONC)) "$(url_of "$b" /hello.php)" >/dev/null 2>&1 || true
            mapfile -t pids < <(balancer_pids "$b")
            t0=$(cpu_ticks "${pids[@]}")
            hey_run rate "$b" "$(url_of "$b" /hello.php)" "$RATE" "$RATE_CONC"
            t1=$(cpu_ticks "${pids[@]}")
            hey_record rate "$b" "$RATE" "$t0" "$t1"
        fi
        extra_stop
    done
}

# One worker of web01 held by an outside FastCGI client from before the
# balancer starts, then the fixed-rate load at once (no warm-up: the issue's
# slowest requests were the first ones).
case_pinned() {
    local b docroot ready
    echo
    echo "== pinned worker: one of web01's $CHILDREN workers held by an outside client, hello at $RATE req/s =="
    for b in fpmlb nginx nginx-ka haproxy; do
        EXTRA_CASE=pinned
        start_cluster
        # shellcheck disable=SC1091
        docroot=$(source "$CL_DIR/cluster.env" && printf '%s' "$DOCROOT")
        ready=$W/extra/pinned-$b.held
        rm -f -- "$ready"
        timeout -k 5 $((RATE_SECONDS + 60)) python3 "$HERE/bench/hold_worker.py" --pool "127.0.$NET.2:9000" \
            --script "$docroot/hello.php" --hold $((RATE_SECONDS + 40)) --ready "$ready" >/dev/null 2>&1 8>&- &
        HELPER_PIDS="$HELPER_PIDS $!"
        wait_for "a web01 worker held" 10 test -s "$ready" || info "the worker holder did not report"
        if start_balancer "$b" 2>"$LOGS/extra-$b.start-error"; then
            hey_run pinned "$b" "$(url_of "$b" /hello.php)" "$RATE" "$RATE_CONC"
            hey_record pinned "$b" "$RATE" -1 -1
        else
            cat "$LOGS/extra-$b.start-error" >&2
        fi
        extra_stop
    done
}

# Two balancers over the same pools, both loaded at RATE/2 at once.
two_loaded() {
    local case_=$1 a=$2 b=$3 half=$((RATE / 2)) conc=$((RATE_CONC / 2)) pa pb
    EXTRA_CASE=$case_
    if extra_start "$a" "$b"; then
        hey_run "$case_" "$a" "$(url_of "$a" /hello.php)" "$half" "$conc" &
        pa=$!
        hey_run "$case_" "$b" "$(url_of "$b" /hello.php)" "$half" "$conc" &
        pb=$!
        wait "$pa" "$pb" || true
        hey_record "$case_" "$a" "$half" -1 -1
        hey_record "$case_" "$b" "$half" -1 -1
    fi
    extra_stop
}

case_pair() {
    echo
    echo "== two fpmlb over the same pools, each at $((RATE / 2)) req/s of hello =="
    two_loaded pair fpmlb-a fpmlb-b
}

case_beside() {
    echo
    echo "== fpmlb beside HAProxy keep-conn (maxconn $(((CHILDREN + 1) / 2)) per pool) over the same pools, each at $((RATE / 2)) req/s =="
    two_loaded beside fpmlb-beside haproxy-beside
}

# rss_sum NAME: VmRSS of the balancer's processes, in KiB.
rss_sum() {
    local p v total=0
    for p in $(balancer_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        [[ -n "$v" ]] && total=$((total + v))
    done
    echo "$total"
}

# IDLE_COUNT clients from 40 source addresses (the per-client cap of fpmlb
# stays at its default), one request each, then silent; RSS before and 3 s
# after the last answer (fpmlb parks a connection quiet for 100 ms). Each
# balancer twice: cleartext, then TLS (its TLS listener; fpmlb-tls has one
# listener, TLS), recorded as NAME and NAME-tls.
case_idle() {
    local name b port scheme ready before after tls_args=() sources=40
    echo
    echo "== $IDLE_COUNT idle HTTP/1.1 keep-alive clients (one request each, then silent) =="
    for name in fpmlb nginx haproxy fpmlb-tls nginx-tls haproxy-tls; do
        EXTRA_CASE=idle
        BAL_EXTRA_ARGS=(--connections $((IDLE_COUNT + 1000)))
        b=$name port=$(bal_port "$name") scheme=http tls_args=()
        case $name in
            fpmlb-tls) scheme=https tls_args=(--tls) ;;
            *-tls) b=${name%-tls} port=$(bal_tls_port "$b") scheme=https tls_args=(--tls) ;;
        esac
        if extra_start "$b"; then
            # One request first, so what every connection shares is there before.
            curl -sk -o /dev/null --max-time 10 "$scheme://$LB_IP:$port/hello.php" || true
            sleep 1
            before=$(rss_sum "$b")
            ready=$W/extra/idle-$name.json
            rm -f -- "$ready"
            timeout -k 5 150 python3 "$HERE/bench/idle_clients.py" --target "$LB_IP:$port" \
                --count "$IDLE_COUNT" --sources "127.0.$NET.100" --source-count "$sources" --hold 15 \
                --timeout 90 --ready "$ready" "${tls_args[@]}" >/dev/null 2>"$W/extra/idle-$name.err" 8>&- &
            HELPER_PIDS="$HELPER_PIDS $!"
            if wait_for "$IDLE_COUNT idle clients on $name" 100 test -s "$ready"; then
                sleep 3
                after=$(rss_sum "$b")
                wait_for "the idle clients of $name to finish" 30 grep -q closed_by_server "$ready" || true
                python3 "$EXTRA_PY" idle --db "$EXTRA_DB" --case idle --balancer "$name" --clients "$ready" \
                    --rss-before "$before" --rss-after "$after"
            else
                info "$name: the idle clients did not report ($(head -c 300 "$W/extra/idle-$name.err"))"
            fi
        fi
        BAL_EXTRA_ARGS=()
        extra_stop
    done
}

# HTTP/2 with prior knowledge: h2load, H2_CONC connections x H2_STREAMS streams.
case_h2() {
    local b pids t0 t1 out
    echo
    echo "== HTTP/2 over cleartext (h2c): hello, h2load -c$H2_CONC -m$H2_STREAMS, ${RUN_SECONDS}s =="
    for b in fpmlb fpmlb-1 nginx haproxy; do
        EXTRA_CASE=h2
        BAL_EXTRA_ARGS=(--h2c)
        if extra_start "$b"; then
            out=$W/extra/h2-$b
            timeout -k 5 30 h2load -c "$H2_CONC" -m "$H2_STREAMS" -D "$WARMUP" "$(url_of "$b" /hello.php)" >/dev/null 2>&1 || true
            mapfile -t pids < <(balancer_pids "$b")
            t0=$(cpu_ticks "${pids[@]}")
            timeout -k 5 $((RUN_SECONDS + 30)) h2load -c "$H2_CONC" -m "$H2_STREAMS" -D "$RUN_SECONDS" \
                --log-file "$out.log" "$(url_of "$b" /hello.php)" >"$out.out" 2>&1 || true
            t1=$(cpu_ticks "${pids[@]}")
            python3 "$EXTRA_PY" h2load --db "$EXTRA_DB" --case h2 --balancer "$b" --out "$out.out" \
                --log "$out.log" --ticks-before "$t0" --ticks-after "$t1" --clk "$CLK"
        fi
        BAL_EXTRA_ARGS=()
        extra_stop
    done
}

# auto_rate: without BENCH_RATE, half the slowest closed-loop req/s of
# fpmlb, nginx and HAProxy on hello at RATE_CONC connections in this run
# (nginx-ka is left out: it stalls), as a multiple of RATE_CONC; nothing
# when the wrk cases did not measure all three.
auto_rate() {
    [[ -z "${BENCH_RATE:-}" && -s "$DB" ]] || return 0
    local r
    r=$(python3 - "$DB" "$RATE_CONC" <<'PY'
import json, sys
db, conc = sys.argv[1], int(sys.argv[2])
best = {}
for line in open(db):
    run = json.loads(line)
    if run["script"] == "hello" and run["concurrency"] == conc and run["balancer"] in ("fpmlb", "nginx", "haproxy"):
        best[run["balancer"]] = max(best.get(run["balancer"], 0), run["rps"])
if len(best) == 3:
    rate = int(min(best.values()) / 2) // conc * conc
    if rate >= conc * 10:
        print(rate)
PY
    )
    if [[ -n "$r" ]]; then
        RATE=$r
        info "fixed rate: $RATE req/s (half the slowest of fpmlb, nginx and HAProxy on hello at $RATE_CONC connections above)"
    fi
}

((${#EXTRA[@]} == 0)) || auto_rate
for x in "${EXTRA[@]}"; do
    "case_$x"
done
# ============================================================ end of issue-11 cases

TOTAL=$((SECONDS - T0))

# Metadata and the final report.
# (no `| head` on a producer: with pipefail its SIGPIPE would end the script)
fpmlb_version=$("$W/fpmlb-bin" --version 2>/dev/null || echo "fpmlb ?")
nginx_version=$("$(find_bin nginx)" -v 2>&1 || true)
nginx_version=${nginx_version%%$'\n'*}
nginx_version=${nginx_version#nginx version: }
haproxy_version=$("$(find_bin haproxy)" -v 2>/dev/null || true)
haproxy_version=${haproxy_version%%$'\n'*}
haproxy_version=$(awk '{print "HAProxy " $3}' <<<"$haproxy_version")
wrk_version=$(wrk -v 2>&1 || true) # wrk -v exits 1
wrk_version=${wrk_version%%$'\n'*}
wrk_version=$(awk '{print "wrk " $2}' <<<"$wrk_version")
h2load_version=$(h2load --version 2>/dev/null || true)
h2load_version=${h2load_version%%$'\n'*}
openssl_version=$(openssl version 2>/dev/null || true)
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || git_rev="$git_rev+dirty"
META_FILE=$W/meta.json
BM_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) BM_SECONDS=$RUN_SECONDS BM_WARMUP=$WARMUP BM_NODES=$NODES \
    BM_CHILDREN=$CHILDREN BM_CPUS=$(nproc) BM_KERNEL="$(uname -r)" \
    BM_TCP_CC="$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo '?')" BM_FPMLB="$fpmlb_version ($git_rev)" BM_NGINX="$nginx_version" \
    BM_HAPROXY="$haproxy_version" BM_WRK="$wrk_version" BM_H2LOAD="$h2load_version" \
    BM_OPENSSL="$openssl_version" BM_GZIP_LEVEL=$GZIP_LEVEL BM_TOTAL=$TOTAL BM_CASES="${CASES[*]}" \
    BM_BALANCERS="${BALANCERS[*]}" BM_FPMLB_CONFIG="$(cat "$W/fpmlb/fpmlb.yaml" 2>/dev/null || true)" \
    python3 - "$META_FILE" <<'EOF'
import json, os, sys
e = os.environ
meta = {
    "date": e["BM_DATE"], "seconds": int(e["BM_SECONDS"]), "warmup_seconds": int(e["BM_WARMUP"]),
    "nodes": int(e["BM_NODES"]), "children": int(e["BM_CHILDREN"]), "cpus": int(e["BM_CPUS"]),
    "kernel": e["BM_KERNEL"], "tcp_congestion_control": e["BM_TCP_CC"],
    "fpmlb_version": e["BM_FPMLB"], "nginx_version": e["BM_NGINX"], "haproxy_version": e["BM_HAPROXY"],
    "wrk_version": e["BM_WRK"], "h2load_version": e["BM_H2LOAD"], "openssl_version": e["BM_OPENSSL"],
    "gzip_level": int(e["BM_GZIP_LEVEL"]), "total_seconds": int(e["BM_TOTAL"]),
    "cases": e["BM_CASES"].split(), "balancers": e["BM_BALANCERS"].split(),
    "wrk": "wrk -t2 -cN -d%ss --timeout 5s --latency" % e["BM_SECONDS"],
    "h2load": "h2load -t2 -c(N/8) -m8 -D%s (h2-1conn: -t1 -c1 -mN)" % e["BM_SECONDS"],
    "fpmlb_config": e["BM_FPMLB_CONFIG"],
}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f, indent=2)
EOF
mkdir -p -- "$(dirname -- "$OUT_JSON")" "$(dirname -- "$OUT_MD")"
echo
echo "================================================================ summary"
python3 "$REPORT" final --db "$DB" --meta "$META_FILE" --json "$OUT_JSON" --md "$OUT_MD"
if ((${#EXTRA[@]})); then
    python3 "$EXTRA_PY" final --db "$EXTRA_DB" --md "$W/extra.md" --json "${OUT_JSON%.json}-extra.json"
    cat "$W/extra.md" >>"$OUT_MD"
fi
info "total run time ${TOTAL}s; Markdown: $OUT_MD; JSON: $OUT_JSON; logs: $LOGS"
