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
then wrk -t2 -cN -dBENCH_SECONDS --timeout 5s --latency.

Static file cases (static1k, static100k, static10m: a file of 1 KiB, 100 KiB,
10 MiB in the document root, type application/octet-stream) compare fpmlb
(static.root at the document root) with nginx (root, sendfile on) only: HAProxy
serves no files, and nginx-ka is the same nginx for a file.

Balancers get 2 threads/workers each (fpmlb: tokio multi-thread runtime, one
thread per CPU): nginx --workers 2, HAProxy --threads 2.

Environment:
  BENCH_SECONDS    measured seconds per run (default 10)
  BENCH_WARMUP     warm-up seconds per run (default 2)
  BENCH_CASES      cases to run, comma separated SCRIPT[:CONC] (default all):
                   scripts hello, session, 64k, 1m; static files static1k,
                   static100k, static10m; concurrency 32, 256 (or any number);
                   e.g. BENCH_CASES=hello:32 or BENCH_CASES=hello,1m:256
  BENCH_BALANCERS  comma separated subset of fpmlb,nginx,nginx-ka,haproxy
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
BAL_THREADS=2 # fpmlb: tokio multi-thread = one worker thread per CPU on the reference box

uint_in "$RUN_SECONDS" 1 3600 || die "BENCH_SECONDS must be 1..3600"
uint_in "$WARMUP" 0 60 || die "BENCH_WARMUP must be 0..60"
uint_in "$CHILDREN" 1 1000 || die "BENCH_CHILDREN must be 1..1000"

ALL_SCRIPTS=(hello session 64k 1m static1k static100k static10m)
ALL_CONC=(32 256)
ALL_BALANCERS=(fpmlb nginx nginx-ka haproxy)

script_path() {
    case $1 in
        hello) echo /hello.php ;;
        session) echo /session.php ;;
        64k) echo '/big.php?bytes=65536' ;;
        1m) echo '/big.php?bytes=1048576' ;;
        static1k) echo /static/1k.bin ;;
        static100k) echo /static/100k.bin ;;
        static10m) echo /static/10m.bin ;;
        *) return 1 ;;
    esac
}

# Expected body size for the correctness check (empty: only non-empty).
script_size() {
    case $1 in
        hello) echo 6 ;;
        64k) echo 65536 ;;
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
serves_files() { [[ $1 == fpmlb || $1 == nginx ]]; }

bal_port() {
    case $1 in
        fpmlb) echo 8081 ;;
        nginx) echo 8082 ;;
        nginx-ka) echo 8083 ;;
        haproxy) echo 8084 ;;
    esac
}

# Cases: "SCRIPT:CONC" words.
CASES=()
if [[ -z "${BENCH_CASES:-}" || "${BENCH_CASES}" == all ]]; then
    for s in "${ALL_SCRIPTS[@]}"; do for c in "${ALL_CONC[@]}"; do CASES+=("$s:$c"); done; done
else
    for item in ${BENCH_CASES//,/ }; do
        s=${item%%:*}
        script_path "$s" >/dev/null || die "BENCH_CASES: unknown script '$s' (hello, session, 64k, 1m, static1k, static100k, static10m)"
        if [[ "$item" == *:* ]]; then
            c=${item#*:}
            uint_in "$c" "$WRK_THREADS" 100000 || die "BENCH_CASES: bad concurrency in '$item'"
            CASES+=("$s:$c")
        else
            for c in "${ALL_CONC[@]}"; do CASES+=("$s:$c"); done
        fi
    done
fi
((${#CASES[@]})) || die "BENCH_CASES selects nothing"

BALANCERS=()
if [[ -z "${BENCH_BALANCERS:-}" || "${BENCH_BALANCERS}" == all ]]; then
    BALANCERS=("${ALL_BALANCERS[@]}")
else
    for b in ${BENCH_BALANCERS//,/ }; do
        case $b in fpmlb | nginx | nginx-ka | haproxy) BALANCERS+=("$b") ;; *) die "BENCH_BALANCERS: unknown balancer '$b' (fpmlb, nginx, nginx-ka, haproxy)" ;; esac
    done
fi
((${#BALANCERS[@]})) || die "BENCH_BALANCERS selects nothing"

need_cmd wrk curl python3 ss ps flock timeout getconf
find_bin nginx >/dev/null
find_bin haproxy >/dev/null
find_php_fpm >/dev/null
find_bin memcached >/dev/null

FPMLB_SRC=${FPMLB_BIN:-$REPO/target/release/fpmlb}
for b in "${BALANCERS[@]}"; do
    if [[ "$b" == fpmlb ]]; then
        [[ -x "$FPMLB_SRC" ]] || die "$FPMLB_SRC not found; run: cargo build --release (or make bench)"
    fi
done

mkdir -p -- "$BENCH_DIR"
BENCH_DIR=$(cd -P -- "$BENCH_DIR" && pwd -P)
OUT_JSON=${BENCH_OUT:-$BENCH_DIR/results.json}
OUT_MD=${BENCH_MD:-$BENCH_DIR/results.md}
W=$BENCH_DIR/work
CL_DIR=$W/cluster
LOGS=$W/logs
DB=$W/runs.jsonl
REPORT=$HERE/bench/report.py
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
        fpmlb)
            pid=$(read_pidfile "$d/fpmlb.pid")
            if [[ -n "$pid" ]]; then
                STOP_TIMEOUT=10 stop_pid fpmlb "$pid" "$(fpmlb_exe)" TERM 2>>"$LOGS/stop.log" || true
            fi
            rm -f -- "$d/fpmlb.pid"
            ;;
        nginx | nginx-ka)
            if [[ -d "$d" ]]; then "$HERE/nginx.sh" stop --dir "$d" >>"$LOGS/stop.log" 2>&1 || true; fi
            ;;
        haproxy)
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
    if [[ -n "$CUR_BAL" ]]; then
        stop_balancer "$CUR_BAL"
        CUR_BAL=""
    fi
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

write_fpmlb_config() {
    local cfg=$1 script=$2 docroot i
    # shellcheck disable=SC1091,SC2153
    docroot=$(source "$CL_DIR/cluster.env" && printf '%s' "$DOCROOT")
    {
        echo "# generated by integration/bench.sh"
        echo "listen: \"$LB_IP:$(bal_port fpmlb)\""
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
    } >"$cfg"
}

fpmlb_ready() {
    local pid
    pid=$(read_pidfile "$1/fpmlb.pid")
    [[ -n "$pid" ]] && pid_alive "$pid" "$2" && is_listening "$3"
}

# start_balancer NAME SCRIPT: returns 1 (with the reason in $LOGS) if it did not start.
start_balancer() {
    local b=$1 script=$2 d=$W/$1 listen
    listen=$LB_IP:$(bal_port "$b")
    rm -rf -- "$d"
    mkdir -p -- "$d"
    CUR_BAL=$b
    case $b in
        fpmlb)
            write_fpmlb_config "$d/fpmlb.yaml" "$script"
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
            if ! wait_for "fpmlb on $listen" 10 fpmlb_ready "$d" "$(fpmlb_exe)" "$listen"; then
                tail_file "$d/fpmlb.log"
                return 1
            fi
            ;;
        nginx)
            "$HERE/nginx.sh" start --dir "$d" --listen "$listen" --cluster "$CL_DIR" --workers "$BAL_THREADS" \
                >"$d/start.log" 2>&1 8>&- || { cat "$d/start.log" >&2; return 1; }
            ;;
        nginx-ka)
            "$HERE/nginx.sh" start --dir "$d" --listen "$listen" --cluster "$CL_DIR" --workers "$BAL_THREADS" \
                --keepalive 32 >"$d/start.log" 2>&1 8>&- || { cat "$d/start.log" >&2; return 1; }
            ;;
        haproxy)
            "$HERE/haproxy.sh" start --dir "$d" --listen "$listen" --cluster "$CL_DIR" --threads "$BAL_THREADS" \
                --maxconn "$CHILDREN" >"$d/start.log" 2>&1 8>&- || { cat "$d/start.log" >&2; return 1; }
            ;;
    esac
}

# balancer_pids NAME: the main pid and its children (nginx workers).
balancer_pids() {
    local b=$1 d=$W/$1 pid
    case $b in
        fpmlb) pid=$(read_pidfile "$d/fpmlb.pid") ;;
        nginx | nginx-ka) pid=$(read_pidfile "$d/nginx.pid") ;;
        haproxy) pid=$(read_pidfile "$d/haproxy.pid") ;;
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
        fpmlb) f=$d/fpmlb.log ;;
        nginx | nginx-ka) f=$d/error.log ;;
        haproxy) f=$d/haproxy.out ;;
    esac
    [[ -s "$f" ]] || return 0
    n=$(grep -cEv '\[notice\]|^\s*$' "$f" || true)
    ((n > 0)) || return 0
    first=$(grep -m 1 -Ev '\[notice\]|^\s*$' "$f" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200)
    printf '%d line(s) in %s, first: %s' "$n" "$(basename "$f")" "$first"
}

# check_response URL SCRIPT: one request with curl; prints a problem or nothing.
check_response() {
    local url=$1 s=$2 out code size want
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' --max-time 10 "$url" 2>&1) || {
        echo "curl check failed: $out"
        return 0
    }
    read -r code size <<<"$out"
    want=$(script_size "$s")
    if [[ "$code" != 200 ]]; then
        echo "curl check: HTTP $code"
    elif [[ -n "$want" && "$size" != "$want" ]]; then
        echo "curl check: body of $size bytes, expected $want"
    elif [[ "$size" == 0 ]]; then
        echo "curl check: empty body"
    fi
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
rm -rf -- "$LOGS" "$DB" "$W/wrk"
mkdir -p -- "$LOGS" "$W/wrk"

if [[ -x "$FPMLB_SRC" ]]; then
    cp -f -- "$FPMLB_SRC" "$W/fpmlb-bin.new"
    mv -f -- "$W/fpmlb-bin.new" "$W/fpmlb-bin"
fi

T0=$SECONDS
nruns=0
for case_ in "${CASES[@]}"; do
    for b in "${BALANCERS[@]}"; do
        if ! is_static "${case_%%:*}" || serves_files "$b"; then nruns=$((nruns + 1)); fi
    done
done
info "$nruns runs (${#CASES[@]} cases, ${#BALANCERS[@]} balancers), ~$((nruns * (RUN_SECONDS + WARMUP + 6) / 60 + 1)) min; results in $OUT_MD and $OUT_JSON"

for case_ in "${CASES[@]}"; do
    s=${case_%%:*}
    c=${case_#*:}
    path=$(script_path "$s")
    echo
    echo "== $s @ $c connections ($path) =="
    for b in "${BALANCERS[@]}"; do
        if is_static "$s" && ! serves_files "$b"; then
            continue
        fi
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
        url="http://$LB_IP:$(bal_port "$b")$path"
        problem=$(check_response "$url" "$s")
        [[ -z "$problem" ]] || { notes+=("$problem"); info "$b: $problem"; }
        if ((WARMUP > 0)); then
            timeout -k 5 $((WARMUP + 20)) wrk -t"$WRK_THREADS" -c"$c" -d"${WARMUP}s" --timeout "$WRK_TIMEOUT" "$url" \
                >"$W/wrk/$tag.warmup" 2>&1 || notes+=("warm-up wrk exited with $?")
        fi
        mapfile -t pids < <(balancer_pids "$b")
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        t_before=$(cpu_ticks "${pids[@]}")
        rc=0
        timeout -k 5 $((RUN_SECONDS + 30)) wrk -t"$WRK_THREADS" -c"$c" -d"${RUN_SECONDS}s" --timeout "$WRK_TIMEOUT" \
            --latency -s "$LUA" "$url" >"$W/wrk/$tag.out" 2>&1 || rc=$?
        t_after=$(cpu_ticks "${pids[@]}")
        mapfile -t pids_end < <(balancer_pids "$b")
        if [[ "${pids[*]}" != "${pids_end[*]}" ]]; then
            notes+=("balancer processes changed during the run (${pids[*]} -> ${pids_end[*]:-none})")
        fi
        rss=$(peak_rss "${pids_end[@]}")
        ((rc == 0)) || notes+=("wrk exited with $rc")
        finding=$(log_findings "$b")
        [[ -z "$finding" ]] || notes+=("$finding")
        note_args=()
        for n in "${notes[@]}"; do note_args+=(--note "$n"); done
        python3 "$REPORT" add --db "$DB" --balancer "$b" --script "$s" --path "$path" --conc "$c" \
            --wrk "$W/wrk/$tag.out" --ticks-before "$t_before" --ticks-after "$t_after" --clk "$CLK" \
            --rss-kb "$rss" --load "$load" "${note_args[@]}"
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
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || git_rev="$git_rev+dirty"
META_FILE=$W/meta.json
BM_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) BM_SECONDS=$RUN_SECONDS BM_WARMUP=$WARMUP BM_NODES=$NODES \
    BM_CHILDREN=$CHILDREN BM_CPUS=$(nproc) BM_FPMLB="$fpmlb_version ($git_rev)" BM_NGINX="$nginx_version" \
    BM_HAPROXY="$haproxy_version" BM_WRK="$wrk_version" BM_TOTAL=$TOTAL BM_CASES="${CASES[*]}" \
    BM_BALANCERS="${BALANCERS[*]}" BM_FPMLB_CONFIG="$(cat "$W/fpmlb/fpmlb.yaml" 2>/dev/null || true)" \
    python3 - "$META_FILE" <<'EOF'
import json, os, sys
e = os.environ
meta = {
    "date": e["BM_DATE"], "seconds": int(e["BM_SECONDS"]), "warmup_seconds": int(e["BM_WARMUP"]),
    "nodes": int(e["BM_NODES"]), "children": int(e["BM_CHILDREN"]), "cpus": int(e["BM_CPUS"]),
    "fpmlb_version": e["BM_FPMLB"], "nginx_version": e["BM_NGINX"], "haproxy_version": e["BM_HAPROXY"],
    "wrk_version": e["BM_WRK"], "total_seconds": int(e["BM_TOTAL"]),
    "cases": e["BM_CASES"].split(), "balancers": e["BM_BALANCERS"].split(),
    "wrk": "wrk -t2 -cN -d%ss --timeout 5s --latency" % e["BM_SECONDS"],
    "fpmlb_config": e["BM_FPMLB_CONFIG"],
}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f, indent=2)
EOF
mkdir -p -- "$(dirname -- "$OUT_JSON")" "$(dirname -- "$OUT_MD")"
echo
echo "================================================================ summary"
python3 "$REPORT" final --db "$DB" --meta "$META_FILE" --json "$OUT_JSON" --md "$OUT_MD"
info "total run time ${TOTAL}s; Markdown: $OUT_MD; JSON: $OUT_JSON; logs: $LOGS"
