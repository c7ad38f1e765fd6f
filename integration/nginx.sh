#!/usr/bin/env bash
# Reference nginx in front of the php-fpm nodes (Debian's fastcgi-php.conf snippet).
set -euo pipefail

# shellcheck disable=SC2034 # used by lib.sh
PROG=nginx.sh
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

usage() {
    cat <<'EOF'
usage:
  nginx.sh start --dir DIR --listen IP:PORT --backends "ADDR ..." --docroot DOCROOT
                 [--keepalive N] [--workers N] [--connections N] [--h2c] [--cluster CLUSTER_DIR]
                 [--tls-listen IP:PORT --cert PEM --key PEM] [--gzip LEVEL] [--open-file-cache]
  nginx.sh stop   --dir DIR
  nginx.sh status --dir DIR

--backends  space separated; each ADDR is IP:PORT, unix:/path or /path, optionally
            prefixed by "name=" (so the NODES value of cluster.env can be passed as is).
--cluster   take --backends (NODES) and --docroot (DOCROOT) from CLUSTER_DIR/cluster.env
            when they are not given.
--keepalive N   upstream keepalive N + fastcgi_keep_conn on (default: off, as Debian).
--workers N     worker_processes (default 1).
--connections N worker_connections, clients and FastCGI connections together
                (default 4096; the file limit follows it).
--h2c           the listener speaks HTTP/2 with prior knowledge (listen ... http2).
--tls-listen IP:PORT  also `listen IP:PORT ssl http2` with --cert and --key
                (TLS 1.2 and 1.3, HTTP/2 by ALPN).
--gzip LEVEL    gzip on, gzip_comp_level LEVEL, for fpmlb's default compression
                types, gzip_min_length 1k, gzip_vary on.
--open-file-cache  open_file_cache max=1000 inactive=20s, open_file_cache_valid 1s
                (fpmlb's static.open_file_cache defaults; nginx's is off by default).
Files: DIR/nginx.conf, DIR/nginx.pid, DIR/error.log, DIR/nginx-temp/.
EOF
}

nginx_bin() { find_bin nginx; }

cmd_stop() {
    local dir=$1 pid exe
    pid=$(read_pidfile "$dir/nginx.pid")
    exe=$(readlink -f "$(nginx_bin)")
    if [[ -z "$pid" ]]; then
        info "no nginx pid recorded in $dir; nothing to stop"
    else
        stop_pid nginx "$pid" "$exe" TERM
    fi
    rm -f -- "$dir/nginx.pid"
}

cmd_status() {
    local dir=$1 pid exe listen=""
    pid=$(read_pidfile "$dir/nginx.pid")
    exe=$(readlink -f "$(nginx_bin)")
    [[ -f "$dir/nginx.listen" ]] && listen=$(cat "$dir/nginx.listen")
    if [[ -n "$pid" ]] && pid_alive "$pid" "$exe"; then
        printf '%-14s %-28s pid %-8s running\n' nginx "$listen" "$pid"
    else
        printf '%-14s %-28s pid %-8s not running\n' nginx "$listen" "${pid:--}"
        return 1
    fi
}

cmd_start() {
    local dir=$1
    shift
    local listen="" backends="" docroot="" keepalive="" workers=1 cluster="" connections=4096 h2c="" tls_listen="" cert="" key="" gzip="" ofc=""
    while (($#)); do
        case $1 in
            --listen) listen=${2:?--listen needs IP:PORT}; shift 2 ;;
            --backends) backends=${2:?--backends needs a list}; shift 2 ;;
            --docroot) docroot=${2:?--docroot needs a path}; shift 2 ;;
            --keepalive) keepalive=${2:?--keepalive needs a number}; shift 2 ;;
            --open-file-cache)
                ofc="    open_file_cache max=1000 inactive=20s;
    open_file_cache_valid 1s;"
                shift
                ;;
            --workers) workers=${2:?--workers needs a number}; shift 2 ;;
            --connections) connections=${2:?--connections needs a number}; shift 2 ;;
            --h2c) h2c=" http2"; shift ;;
            --cluster) cluster=${2:?--cluster needs a directory}; shift 2 ;;
            --tls-listen) tls_listen=${2:?--tls-listen needs IP:PORT}; shift 2 ;;
            --cert) cert=${2:?--cert needs a PEM file}; shift 2 ;;
            --key) key=${2:?--key needs a PEM file}; shift 2 ;;
            --gzip) gzip=${2:?--gzip needs a level}; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
    done
    if [[ -n "$cluster" ]]; then
        [[ -f "$cluster/cluster.env" ]] || die "$cluster/cluster.env not found (is the cluster started?)"
        local NODES DOCROOT
        # shellcheck disable=SC1091
        NODES=$(source "$cluster/cluster.env" && printf '%s' "$NODES")
        # shellcheck disable=SC1091
        DOCROOT=$(source "$cluster/cluster.env" && printf '%s' "$DOCROOT")
        [[ -n "$backends" ]] || backends=$NODES
        [[ -n "$docroot" ]] || docroot=$DOCROOT
    fi
    [[ -n "$listen" ]] || die "--listen IP:PORT is required"
    [[ -n "$backends" ]] || die "--backends is required"
    [[ -n "$docroot" ]] || die "--docroot is required"
    [[ -d "$docroot" ]] || die "document root $docroot does not exist (nginx checks scripts on its own disk: use the cluster's DIR/www)"
    [[ -z "$keepalive" ]] || uint_in "$keepalive" 1 100000 || die "--keepalive must be a positive number"
    uint_in "$workers" 1 1024 || die "--workers must be 1..1024"
    [[ -z "$gzip" ]] || uint_in "$gzip" 1 9 || die "--gzip must be 1..9"
    uint_in "$connections" 16 1000000 || die "--connections must be 16..1000000"
    split_hostport "$listen"
    if [[ -n "$tls_listen" ]]; then
        split_hostport "$tls_listen"
        [[ -r "$cert" && -r "$key" ]] || die "--tls-listen needs --cert and --key (readable PEM files)"
    fi

    local nginx exe pid
    nginx=$(nginx_bin)
    exe=$(readlink -f "$nginx")
    dir=$(abs_dir "$dir")
    pid=$(read_pidfile "$dir/nginx.pid")
    if [[ -n "$pid" ]] && pid_alive "$pid" "$exe"; then
        die "nginx already running in $dir (pid $pid); run: $0 stop --dir $dir"
    fi
    rm -f -- "$dir/nginx.pid"

    local busy l
    for l in "$listen" $tls_listen; do
        if ! busy=$(check_free "$l"); then
            printf '%s\n' "$busy" >&2
            die "cannot listen on $l; nginx not started"
        fi
    done
    local tls_conf="" gzip_conf=""
    if [[ -n "$tls_listen" ]]; then
        tls_conf="        listen $tls_listen ssl http2;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    if [[ -n "$gzip" ]]; then
        gzip_conf="    gzip on;
    gzip_comp_level $gzip;
    gzip_min_length 1024;
    gzip_vary on;
    gzip_proxied any;
    gzip_types text/css text/plain text/xml text/javascript application/javascript application/json application/xml image/svg+xml;"
    fi

    # Relative includes in Debian's snippet (include fastcgi.conf;) are resolved
    # against the directory of the -c file, so link the stock files next to it.
    local f
    for f in fastcgi.conf fastcgi_params snippets mime.types; do
        if [[ -e "/etc/nginx/$f" ]]; then
            rm -f -- "${dir:?}/$f"
            ln -s "/etc/nginx/$f" "$dir/$f"
        fi
    done
    [[ -e "$dir/snippets/fastcgi-php.conf" ]] || die "/etc/nginx/snippets/fastcgi-php.conf not found (package nginx-common); run integration/install.sh"
    mkdir -p "$dir/nginx-temp"
    chmod a+rx "$dir"

    local servers="" b addr
    for b in $backends; do
        addr=${b#*=}
        if [[ "$addr" == unix:* ]]; then
            servers+="        server $addr;"$'\n'
        elif [[ "$addr" == /* ]]; then
            servers+="        server unix:$addr;"$'\n'
        else
            split_hostport "$addr" # validates
            servers+="        server $addr;"$'\n'
        fi
    done
    local ka="" keepconn=""
    if [[ -n "$keepalive" ]]; then
        ka="        keepalive $keepalive;"
        keepconn="            fastcgi_keep_conn on;"
    fi

    cat >"$dir/nginx.conf" <<EOF
# generated by integration/nginx.sh
user nobody nogroup;
daemon on;
worker_processes $workers;
worker_rlimit_nofile $((connections + 100));
pid $dir/nginx.pid;
error_log $dir/error.log;

events {
    worker_connections $connections;
}

http {
    include mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_max_body_size 0;
$gzip_conf
$ofc

    client_body_temp_path $dir/nginx-temp/client_body;
    proxy_temp_path $dir/nginx-temp/proxy;
    fastcgi_temp_path $dir/nginx-temp/fastcgi;
    uwsgi_temp_path $dir/nginx-temp/uwsgi;
    scgi_temp_path $dir/nginx-temp/scgi;

    upstream php {
$servers$ka
    }

    server {
        listen $listen$h2c;
$tls_conf
        server_name _;
        root "$docroot";
        index index.php;

        location ~ [^/]\.php(/|\$) {
            include snippets/fastcgi-php.conf;
            fastcgi_pass php;
$keepconn
        }
    }
}
EOF
    printf '%s\n' "$listen" >"$dir/nginx.listen"

    if ! "$nginx" -t -q -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" </dev/null >"$dir/nginx.out" 2>&1; then
        cat "$dir/nginx.out" >&2
        die "nginx configuration test failed ($dir/nginx.conf)"
    fi
    if ! "$nginx" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" </dev/null >>"$dir/nginx.out" 2>&1; then
        tail_file "$dir/nginx.out"
        tail_file "$dir/error.log"
        die "nginx failed to start"
    fi
    for l in "$listen" $tls_listen; do
        if ! wait_for "nginx pid file and $l" 10 nginx_ready "$dir" "$exe" "$l"; then
            tail_file "$dir/error.log"
            cmd_stop "$dir" || true
            die "nginx did not come up on $l"
        fi
    done
    info "nginx listening on http://$listen/ (pid $(read_pidfile "$dir/nginx.pid"), root $docroot)"
    printf 'NGINX_URL="http://%s"\n' "$listen"
}

nginx_ready() {
    local pid
    pid=$(read_pidfile "$1/nginx.pid")
    [[ -n "$pid" ]] && pid_alive "$pid" "$2" && is_listening "$3"
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
