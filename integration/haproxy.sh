#!/usr/bin/env bash
# Reference HAProxy (fcgi-app) in front of the php-fpm nodes, for benchmarks;
# or (`proxy`) a TCP balancer that sends the PROXY protocol to fpmlb, as a
# cloud load balancer in front of it would.
set -euo pipefail

# shellcheck disable=SC2034 # used by lib.sh
PROG=haproxy.sh
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

usage() {
    cat <<'EOF'
usage:
  haproxy.sh start --dir DIR --listen IP:PORT --backends "ADDR ..." --docroot DOCROOT
                   [--maxconn N] [--threads N] [--connections N] [--h2c] [--cluster CLUSTER_DIR]
                   [--tls-listen IP:PORT --cert PEM] [--compress]
  haproxy.sh proxy  --dir DIR --forward LISTEN=TARGET [--forward ...] [--source IP]
                   [--http [--forward-tls LISTEN=TARGET --cert PEM]]
  haproxy.sh stop   --dir DIR
  haproxy.sh status --dir DIR

--backends  space separated; IP:PORT, unix:/path or /path, optionally "name=" prefixed
            (the NODES value of cluster.env can be passed as is).
--maxconn N per-server maxconn (default: CHILDREN from --cluster, else 4); set it to
            pm.max_children so HAProxy queues instead of overflowing php-fpm.
--threads N nbthread (default: HAProxy's default, one per CPU).
--connections N  global maxconn (default: what the open file limit allows at
            2 fds per connection, at most 10000); above that limit HAProxy
            starts anyway (no strict-limits), which idle clients (one fd each) fit.
--h2c       the listener speaks HTTP/2 with prior knowledge (bind ... proto h2).
--cluster   take --backends/--docroot/--maxconn defaults from CLUSTER_DIR/cluster.env.
--tls-listen IP:PORT  also terminate TLS there (HTTP/1.1 and HTTP/2 by ALPN), with
            --cert PEM (certificate chain and key in one file).
--compress  gzip (HAProxy's libslz) for the types fpmlb compresses by default.
proxy       TCP mode (no TLS termination): each --forward IP:PORT=IP:PORT passes
            connections on with `send-proxy-v2` (HAProxy's side of fpmlb's
            proxy_protocol: true); --source IP is the address it connects from.
            --http: HTTP mode instead, an HTTP reverse proxy with `option forwardfor`
            (X-Forwarded-For) and X-Forwarded-Proto; --forward-tls LISTEN=TARGET
            terminates TLS on LISTEN with --cert PEM (cert and key in one file).
Files: DIR/haproxy.cfg, DIR/haproxy.pid, DIR/haproxy.sock (stats socket), DIR/haproxy.out.
EOF
}

haproxy_bin() { find_bin haproxy; }

cmd_stop() {
    local dir=$1 pid exe
    pid=$(read_pidfile "$dir/haproxy.pid")
    exe=$(readlink -f "$(haproxy_bin)")
    if [[ -z "$pid" ]]; then
        info "no haproxy pid recorded in $dir; nothing to stop"
    else
        stop_pid haproxy "$pid" "$exe" TERM
    fi
    rm -f -- "$dir/haproxy.pid" "$dir/haproxy.sock"
}

cmd_status() {
    local dir=$1 pid exe listen=""
    pid=$(read_pidfile "$dir/haproxy.pid")
    exe=$(readlink -f "$(haproxy_bin)")
    [[ -f "$dir/haproxy.listen" ]] && listen=$(cat "$dir/haproxy.listen")
    if [[ -n "$pid" ]] && pid_alive "$pid" "$exe"; then
        printf '%-14s %-28s pid %-8s running\n' haproxy "$listen" "$pid"
    else
        printf '%-14s %-28s pid %-8s not running\n' haproxy "$listen" "${pid:--}"
        return 1
    fi
}

# claim_dir DIR: DIR as an absolute path, with no HAProxy of ours running
# in it (a stale pid file is removed).
claim_dir() {
    local dir exe pid
    exe=$(readlink -f "$(haproxy_bin)")
    dir=$(abs_dir "$1")
    pid=$(read_pidfile "$dir/haproxy.pid")
    if [[ -n "$pid" ]] && pid_alive "$pid" "$exe"; then
        die "haproxy already running in $dir (pid $pid); run: $0 stop --dir $dir"
    fi
    rm -f -- "$dir/haproxy.pid"
    printf '%s\n' "$dir"
}

# launch DIR: checks DIR/haproxy.cfg, then starts HAProxy on it (it daemonizes).
launch() {
    local dir=$1 haproxy
    haproxy=$(haproxy_bin)
    if ! "$haproxy" -c -q -f "$dir/haproxy.cfg" </dev/null >"$dir/haproxy.out" 2>&1; then
        cat "$dir/haproxy.out" >&2
        die "haproxy configuration check failed ($dir/haproxy.cfg)"
    fi
    if ! "$haproxy" -f "$dir/haproxy.cfg" </dev/null >>"$dir/haproxy.out" 2>&1; then
        tail_file "$dir/haproxy.out"
        die "haproxy failed to start"
    fi
}

haproxy_ready() {
    local pid
    pid=$(read_pidfile "$1/haproxy.pid")
    [[ -n "$pid" ]] && pid_alive "$pid" "$2" && is_listening "$3"
}

cmd_start() {
    local dir=$1
    shift
    local listen="" backends="" docroot="" maxconn="" threads="" cluster="" connections="" h2c="" tls_listen="" cert="" compress=0
    while (($#)); do
        case $1 in
            --listen) listen=${2:?--listen needs IP:PORT}; shift 2 ;;
            --backends) backends=${2:?--backends needs a list}; shift 2 ;;
            --docroot) docroot=${2:?--docroot needs a path}; shift 2 ;;
            --maxconn) maxconn=${2:?--maxconn needs a number}; shift 2 ;;
            --threads) threads=${2:?--threads needs a number}; shift 2 ;;
            --connections) connections=${2:?--connections needs a number}; shift 2 ;;
            --h2c) h2c=" proto h2"; shift ;;
            --cluster) cluster=${2:?--cluster needs a directory}; shift 2 ;;
            --tls-listen) tls_listen=${2:?--tls-listen needs IP:PORT}; shift 2 ;;
            --cert) cert=${2:?--cert needs a PEM file}; shift 2 ;;
            --compress) compress=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
    done
    if [[ -n "$tls_listen" ]]; then
        [[ -n "$cert" && -r "$cert" ]] || die "--tls-listen needs --cert PEM (certificate and key in one file)"
        split_hostport "$tls_listen"
    fi
    if [[ -n "$cluster" ]]; then
        [[ -f "$cluster/cluster.env" ]] || die "$cluster/cluster.env not found (is the cluster started?)"
        local NODES DOCROOT CHILDREN
        # shellcheck disable=SC1091
        NODES=$(source "$cluster/cluster.env" && printf '%s' "$NODES")
        # shellcheck disable=SC1091
        DOCROOT=$(source "$cluster/cluster.env" && printf '%s' "$DOCROOT")
        # shellcheck disable=SC1091
        CHILDREN=$(source "$cluster/cluster.env" && printf '%s' "${CHILDREN:-}")
        [[ -n "$backends" ]] || backends=$NODES
        [[ -n "$docroot" ]] || docroot=$DOCROOT
        [[ -n "$maxconn" ]] || maxconn=$CHILDREN
    fi
    [[ -n "$maxconn" ]] || maxconn=4
    [[ -n "$listen" ]] || die "--listen IP:PORT is required"
    [[ -n "$backends" ]] || die "--backends is required"
    [[ -n "$docroot" ]] || die "--docroot is required"
    [[ "$docroot" == /* ]] || die "--docroot must be an absolute path (as seen by the php-fpm nodes)"
    uint_in "$maxconn" 1 1000000 || die "--maxconn must be a positive number"
    [[ -z "$threads" ]] || uint_in "$threads" 1 4096 || die "--threads must be 1..4096"
    split_hostport "$listen"

    local exe
    exe=$(readlink -f "$(haproxy_bin)")
    dir=$(claim_dir "$dir")

    local busy l
    for l in "$listen" $tls_listen; do
        if ! busy=$(check_free "$l"); then
            printf '%s\n' "$busy" >&2
            die "cannot listen on $l; haproxy not started"
        fi
    done
    local tls_bind="" compression=""
    [[ -n "$tls_listen" ]] && tls_bind="    bind $tls_listen ssl crt $cert alpn h2,http/1.1"
    # The types of fpmlb's default compression.types; HAProxy's gzip is libslz
    # (Debian's build: USE_SLZ), which has one speed.
    ((compress)) && compression="    compression algo gzip
    compression type text/html text/css text/plain text/xml text/javascript application/javascript application/json application/xml image/svg+xml"

    local servers="" b addr name i=0
    for b in $backends; do
        i=$((i + 1))
        addr=${b#*=}
        if [[ "$b" == *=* ]]; then name=${b%%=*}; else name=$(printf 'web%02d' "$i"); fi
        if [[ "$addr" == unix:* ]]; then
            addr=${addr#unix:}
        elif [[ "$addr" != /* ]]; then
            split_hostport "$addr" # validates
        fi
        servers+="    server $name $addr proto fcgi maxconn $maxconn"$'\n'
    done
    # Global maxconn: HAProxy needs ~2 fds per connection and refuses to start
    # if it cannot raise RLIMIT_NOFILE accordingly.
    local hard gmax
    hard=$(ulimit -Hn)
    [[ "$hard" == unlimited ]] && hard=1048576
    gmax=$(((hard - 200) / 2))
    ((gmax > 10000)) && gmax=10000
    ((gmax >= 100)) || die "open file limit too low for haproxy (ulimit -Hn = $hard)"
    local limits=""
    if [[ -n "$connections" ]]; then
        uint_in "$connections" 16 1000000 || die "--connections must be 16..1000000"
        if ((connections > gmax)); then
            limits="    no strict-limits"
        fi
        gmax=$connections
    fi
    local nbthread=""
    [[ -n "$threads" ]] && nbthread="    nbthread $threads"

    cat >"$dir/haproxy.cfg" <<EOF
# generated by integration/haproxy.sh
global
    daemon
    pidfile $dir/haproxy.pid
    maxconn $gmax
$limits
    stats socket $dir/haproxy.sock mode 600 level admin
$nbthread

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout queue 120s

fcgi-app php
    docroot $docroot
    index index.php
    path-info ^(/.+\.php)(/.*)?$
    option keep-conn

frontend fe
    bind $listen$h2c
$tls_bind
$compression
    default_backend php

backend php
    use-fcgi-app php
    http-reuse always
    balance roundrobin
$servers
EOF
    printf '%s\n' "$listen" >"$dir/haproxy.listen"

    launch "$dir"
    for l in "$listen" $tls_listen; do
        if ! wait_for "haproxy pid file and $l" 10 haproxy_ready "$dir" "$exe" "$l"; then
            tail_file "$dir/haproxy.out"
            cmd_stop "$dir" || true
            die "haproxy did not come up on $l"
        fi
    done
    info "haproxy listening on http://$listen/${tls_listen:+ and https://$tls_listen/} (pid $(read_pidfile "$dir/haproxy.pid"), docroot $docroot, maxconn/server $maxconn)"
    printf 'HAPROXY_URL="http://%s"\n' "$listen"
}

cmd_proxy() {
    local dir=$1
    shift
    local forwards=() tls_forwards=() source="" http=0 cert=""
    while (($#)); do
        case $1 in
            --forward) forwards+=("${2:?--forward needs LISTEN=TARGET}"); shift 2 ;;
            --forward-tls) tls_forwards+=("${2:?--forward-tls needs LISTEN=TARGET}"); shift 2 ;;
            --cert) cert=${2:?--cert needs a PEM file}; shift 2 ;;
            --http) http=1; shift ;;
            --source) source=${2:?--source needs an IP}; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
    done
    ((${#forwards[@]} + ${#tls_forwards[@]})) || die "at least one --forward LISTEN=TARGET is required"
    if ((${#tls_forwards[@]})); then
        ((http)) || die "--forward-tls needs --http"
        [[ -n "$cert" && -r "$cert" ]] || die "--forward-tls needs --cert PEM (certificate and key in one file)"
    fi
    local exe
    exe=$(readlink -f "$(haproxy_bin)")
    dir=$(claim_dir "$dir")
    local sections="" f listen target i=0 busy src="" mode=tcp send="send-proxy-v2" ssl
    [[ -n "$source" ]] && src=" source $source"
    # HTTP mode: what a reverse proxy in front of fpmlb adds (HAProxy's
    # `option forwardfor`, and the scheme the client used).
    local http_opts=""
    if ((http)); then
        mode=http send=""
        http_opts="    option forwardfor
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
"
    fi
    local all=()
    for f in "${forwards[@]}"; do all+=("plain $f"); done
    for f in "${tls_forwards[@]}"; do all+=("tls $f"); done
    forwards=()
    for f in "${all[@]}"; do
        ssl=""
        [[ "${f%% *}" == tls ]] && ssl=" ssl crt $cert alpn h2,http/1.1"
        f=${f#* }
        forwards+=("$f")
        [[ "$f" == *=* ]] || die "--forward takes LISTEN=TARGET, got '$f'"
        listen=${f%%=*} target=${f#*=}
        split_hostport "$listen"
        split_hostport "$target"
        if ! busy=$(check_free "$listen"); then
            printf '%s\n' "$busy" >&2
            die "cannot listen on $listen; haproxy not started"
        fi
        i=$((i + 1))
        sections+="listen fwd$i
    bind $listen$ssl
$http_opts    server fpmlb $target $send$src
"
    done
    cat >"$dir/haproxy.cfg" <<EOF
# generated by integration/haproxy.sh proxy
global
    daemon
    pidfile $dir/haproxy.pid
    maxconn 1000
    stats socket $dir/haproxy.sock mode 600 level admin

defaults
    mode $mode
    timeout connect 5s
    timeout client 60s
    timeout server 60s

$sections
EOF
    printf '%s\n' "${forwards[0]%%=*}" >"$dir/haproxy.listen"
    launch "$dir"
    for f in "${forwards[@]}"; do
        if ! wait_for "haproxy on ${f%%=*}" 10 haproxy_ready "$dir" "$exe" "${f%%=*}"; then
            tail_file "$dir/haproxy.out"
            cmd_stop "$dir" || true
            die "haproxy did not come up on ${f%%=*}"
        fi
    done
    info "haproxy ($mode${send:+, $send}) forwarding ${forwards[*]} (pid $(read_pidfile "$dir/haproxy.pid"))"
}

(($#)) || { usage >&2; exit 2; }
cmd=$1
shift
dir=""
args=()
while (($#)); do
    case $1 in
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
[[ -n "$dir" ]] || die "--dir DIR is required"
[[ "$dir" == /* ]] || dir="$PWD/$dir"
case $cmd in
    start) cmd_start "$dir" "${args[@]}" ;;
    proxy) cmd_proxy "$dir" "${args[@]}" ;;
    stop)
        [[ -d "$dir" ]] || { info "$dir does not exist; nothing to stop"; exit 0; }
        cmd_stop "$(cd -P -- "$dir" && pwd -P)"
        ;;
    status)
        [[ -d "$dir" ]] || { echo "nothing recorded in $dir"; exit 3; }
        cmd_status "$(cd -P -- "$dir" && pwd -P)"
        ;;
    -h | --help | help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
esac
