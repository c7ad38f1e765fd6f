#!/usr/bin/env bash
# Start/stop a local "cluster" of php-fpm nodes (each its own master, chrooted
# like a separate machine) plus the memcached/Redis session stores.
set -euo pipefail

# shellcheck disable=SC2034 # used by lib.sh
PROG=cluster.sh
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -P -- "$HERE/.." && pwd -P)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

usage() {
    cat <<'EOF'
usage:
  cluster.sh start --dir DIR [--net N] [--nodes 3] [--children 4]
                   [--session memcached|memcache|redis|rediscluster|files] [--memcached-count 1]
                   [--redis] [--shared-files] [--php-value NODE:key=value]...
                   [--php-admin-value NODE:key=value]... [--php-ini NODE:key=value]...
                   [--no-probe NODE]... [--unix-node NODE]... [--docroot PATH]
                   [--limit-extensions ".php"|default] [--fastcgi-stderr] [--copy PATH]...
  cluster.sh reconfigure --dir DIR --node NODE[,NODE...|all] [--php-value key=value]...
                   [--php-admin-value key=value]... [--php-ini key=value]...
                   [--user-ini key=value]...
  cluster.sh stop   --dir DIR
  cluster.sh status --dir DIR

Addresses (N = --net, default 0):
  nodes web01..webNN   127.0.N.2:9000, 127.0.N.3:9000, ...  (or DIR/NAME.sock with --unix-node)
  memcached            127.0.N.1:11211 (second: 11212, ...)
  redis                127.0.N.1:6379
  Redis Cluster        127.0.N.1:7000, 7001, 7002 (three masters, --session rediscluster)
Where a node's settings come from, as PHP sees it: --php-value and --php-admin-value are
the pool's php_value[] and php_admin_value[] lines, --php-ini is php-fpm's -d (the php.ini
layer: get_cfg_var() sees it), --user-ini a .user.ini in the node's document root.
NODE may be "all" to apply to every node; a setting wins over the defaults.
--copy PATH copies a host file or directory into every node at the same path, as hard
links where it can (add files to a copy, do not edit its files in place) (what
an application outside its document root needs: Debian's phpMyAdmin reads /usr/share/php,
/etc/phpmyadmin, /var/lib/phpmyadmin).
--shared-files bind-mounts one DIR/shared-sessions over every node's /var/lib/php/sessions
(a shared mount, as NFS would be).
reconfigure restarts the named nodes with their start settings plus the ones given (not
added to those of an earlier reconfigure); without any, a node gets its start settings back.
--limit-extensions: the pools' security.limit_extensions (default ".php", the
  value fpmlb recommends; "default" leaves php-fpm's own, ".php .phar").
--fastcgi-stderr: no php_admin_value[error_log], so PHP's errors reach the
  FastCGI STDERR stream (as with a stock pool) instead of a file.
Facts for scripts are written to DIR/cluster.env (shell-sourcable).
EOF
}

COMPONENTS_FILE= # DIR/cluster.components: LABEL|PIDFILE|EXE|SIGNAL|ADDR

register() {
    printf '%s|%s|%s|%s|%s\n' "$@" >>"$COMPONENTS_FILE"
}

# ---------------------------------------------------------------- stop/status

cmd_stop() {
    local dir=$1 label pidfile exe sig addr pid
    COMPONENTS_FILE=$dir/cluster.components
    if [[ ! -f "$COMPONENTS_FILE" ]]; then
        info "nothing recorded in $dir (no cluster.components); nothing to stop"
        return 0
    fi
    # php-fpm nodes first (they are clients of the session stores), each group
    # in parallel.
    local -a lines=() group=()
    mapfile -t lines <"$COMPONENTS_FILE"
    local pass line
    for pass in fpm other; do
        group=()
        for line in "${lines[@]}"; do
            IFS='|' read -r label pidfile exe sig addr <<<"$line"
            if [[ "$pass" == fpm && "$sig" != QUIT ]] || [[ "$pass" == other && "$sig" == QUIT ]]; then
                continue
            fi
            pid=$(read_pidfile "$pidfile")
            if [[ -z "$pid" ]]; then
                info "$label: no pid recorded ($pidfile); not running"
            else
                group+=("$label|$pid|$exe|$sig")
            fi
        done
        ((${#group[@]} == 0)) || stop_group "${group[@]}"
    done
    if [[ -f "$dir/cluster.mounts" ]]; then
        local m
        while IFS= read -r m; do
            [[ -n "$m" ]] && { umount -- "$m" 2>/dev/null || umount -l -- "$m" 2>/dev/null || info "could not unmount $m"; }
        done <"$dir/cluster.mounts"
        rm -f -- "$dir/cluster.mounts"
    fi
    for line in "${lines[@]}"; do
        IFS='|' read -r label pidfile exe sig addr <<<"$line"
        rm -f -- "$pidfile"
        if [[ "$addr" == unix:* ]]; then
            rm -f -- "${addr#unix:}"
        fi
    done
    rm -f -- "$COMPONENTS_FILE"
}

cmd_status() {
    local dir=$1 label pidfile exe sig addr pid rc=0 state
    COMPONENTS_FILE=$dir/cluster.components
    if [[ ! -f "$COMPONENTS_FILE" ]]; then
        echo "no cluster recorded in $dir"
        return 3
    fi
    while IFS='|' read -r label pidfile exe sig addr; do
        pid=$(read_pidfile "$pidfile")
        if [[ -n "$pid" ]] && pid_alive "$pid" "$exe"; then
            if is_listening "$addr"; then state="running"; else state="running (NOT listening)"; rc=1; fi
            printf '%-14s %-28s pid %-8s %s\n' "$label" "$addr" "$pid" "$state"
        else
            printf '%-14s %-28s pid %-8s %s\n' "$label" "$addr" "${pid:--}" "not running"
            rc=1
        fi
    done <"$COMPONENTS_FILE"
    return "$rc"
}

# ---------------------------------------------------------------------- start

# envline NAME VALUE: NAME="VALUE" with shell double-quote escaping (readable
# by sh and easy to parse from other languages).
envline() {
    local v=$2
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    v=${v//\$/\\\$}
    v=${v//\`/\\\`}
    printf '%s="%s"\n' "$1" "$v"
}

in_list() { # in_list WORD LIST...
    local w=$1 x
    shift
    for x in "$@"; do [[ "$x" == "$w" ]] && return 0; done
    return 1
}

# parse_kv_option WHAT VALUE: checks "key=value" (the value may be empty).
check_kv() {
    local what=$1 kv=$2
    [[ "$kv" == *=* && -n "${kv%%=*}" ]] || die "$what wants key=value, got '$kv'"
    [[ "$kv" != *[$'"\n']* ]] || die "$what: value must not contain double quotes or newlines: '$kv'"
}

# merge_kv BASEFILE [key=value]...: the lines of BASEFILE (key=value) with the given ones
# replacing or adding keys, sorted by key.
merge_kv() {
    local base=$1 line key
    shift
    local -A kv=()
    if [[ -f "$base" ]]; then
        while IFS= read -r line; do
            if [[ -n "$line" ]]; then kv["${line%%=*}"]=${line#*=}; fi
        done <"$base"
    fi
    for line in "$@"; do
        kv["${line%%=*}"]=${line#*=}
    done
    for key in "${!kv[@]}"; do
        printf '%s=%s\n' "$key" "${kv[$key]}"
    done | LC_ALL=C sort
}

# write_pool_conf DIR NAME: DIR/NAME/php-fpm.conf from DIR/NAME/node.env and the node's
# php_value / php_admin_value files (*.now: what it runs with).
write_pool_conf() {
    local dir=$1 name=$2 line
    local ADDR ROOT CHILDREN LIMIT_EXTENSIONS=.php FASTCGI_STDERR=0
    # shellcheck source=/dev/null
    source "$dir/$name/node.env"
    {
        echo "; generated by integration/cluster.sh"
        echo "[global]"
        echo "pid = $dir/$name.pid"
        echo "error_log = $dir/$name/php-fpm.log"
        echo "daemonize = yes"
        echo "log_limit = 8192"
        echo
        echo "[$name]"
        echo "user = nobody"
        echo "group = nogroup"
        if [[ "$ADDR" == unix:* ]]; then
            echo "listen = ${ADDR#unix:}"
            echo "listen.mode = 0666"
        else
            echo "listen = $ADDR"
        fi
        echo "pm = static"
        echo "pm.max_children = $CHILDREN"
        echo "ping.path = /fpm-ping"
        echo "pm.status_path = /fpm-status"
        echo "chroot = $ROOT"
        echo "chdir = /"
        echo "env[NODE_NAME] = $name"
        echo "catch_workers_output = yes"
        echo "decorate_workers_output = no"
        echo "request_terminate_timeout = 0"
        [[ "$LIMIT_EXTENSIONS" == default ]] || echo "security.limit_extensions = $LIMIT_EXTENSIONS"
        ((FASTCGI_STDERR)) || echo "php_admin_value[error_log] = /tmp/php-error.log"
        echo "php_admin_flag[log_errors] = on"
        while IFS= read -r line; do
            if [[ -n "$line" ]]; then printf 'php_value[%s] = "%s"\n' "${line%%=*}" "${line#*=}"; fi
        done <"$dir/$name/php_value.now"
        while IFS= read -r line; do
            if [[ -n "$line" ]]; then printf 'php_admin_value[%s] = "%s"\n' "${line%%=*}" "${line#*=}"; fi
        done <"$dir/$name/php_admin_value.now"
    } >"$dir/$name/php-fpm.conf"
}

# launch_node DIR NAME PHP_FPM: starts the node's master (daemonizes once listening);
# DIR/NAME/php_ini.now becomes -d options (the php.ini layer).
launch_node() {
    local dir=$1 name=$2 php_fpm=$3 line
    local -a defines=()
    while IFS= read -r line; do
        if [[ -n "$line" ]]; then defines+=(-d "$line"); fi
    done <"$dir/$name/php_ini.now"
    "$php_fpm" --fpm-config "$dir/$name/php-fpm.conf" "${defines[@]}" </dev/null >>"$dir/$name/php-fpm.out" 2>&1 9>&- ||
        { tail_file "$dir/$name/php-fpm.out"; tail_file "$dir/$name/php-fpm.log"; die "php-fpm for $name failed to start (config $dir/$name/php-fpm.conf)"; }
}

# ping_node NAME ADDR PHP_CLI: a FastCGI ping through the node's listener.
ping_node() {
    local name=$1 a=$2 php_cli=$3 outp
    outp=$("$php_cli" "$HERE/fcgi.php" "$a" /fpm-ping --script-name /fpm-ping --timeout 5 2>&1) ||
        die "$name ($a): FastCGI ping failed: $outp"
    [[ "$outp" == *pong* ]] || die "$name ($a): unexpected ping answer: $outp"
}

# start_redis_cluster DIR HOST PORT...: cluster-enabled redis-servers made one Redis Cluster
# of masters only, waited for until every node says cluster_state:ok.
start_redis_cluster() {
    local dir=$1 host=$2 redis_bin=$3 redis_cli port d
    shift 3
    redis_cli=$(find_bin redis-cli)
    local -a seeds=()
    for port in "$@"; do
        d="$dir/redis-$port"
        rm -rf -- "$d"
        mkdir -p -- "$d"
        register "redis-$port" "$d/redis.pid" "$(readlink -f "$redis_bin")" TERM "$host:$port"
        # --cluster-announce-ip: without it the nodes meet from 127.0.0.1 and never join.
        "$redis_bin" --bind "$host" --port "$port" --daemonize yes --pidfile "$d/redis.pid" \
            --dir "$d" --logfile "$d/redis.log" --save '' --appendonly no --protected-mode no \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-announce-ip "$host" \
            </dev/null >>"$d/redis.out" 2>&1 9>&- || { tail_file "$d/redis.log"; die "redis-server :$port failed to start"; }
        seeds+=("$host:$port")
    done
    for d in "${seeds[@]}"; do
        wait_for "redis-server on $d" 10 is_listening "$d" || die "redis-server on $d is not listening"
    done
    "$redis_cli" --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes </dev/null >>"$dir/redis-cluster-create.log" 2>&1 ||
        { tail_file "$dir/redis-cluster-create.log"; die "redis-cli --cluster create failed"; }
    local deadline=$((SECONDS + 15)) ok
    while :; do
        ok=1
        for port in "$@"; do
            "$redis_cli" -h "$host" -p "$port" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
        done
        ((ok)) && break
        ((SECONDS < deadline)) || die "Redis Cluster not ok after 15 s"
        sleep 0.1
    done
}

cmd_start() {
    local dir=$1
    shift
    local net=0 nodes=3 children=4 session=memcached mc_count="" want_redis=0 docroot_src="$HERE/www"
    local shared_files=0
    local -a php_values=() admin_values=() ini_values=() no_probe=() unix_nodes=() copies=()
    local limit_extensions=".php" fastcgi_stderr=0
    local orig_args="$*"
    while (($#)); do
        case $1 in
            --net) net=${2:?--net needs a value}; shift 2 ;;
            --nodes) nodes=${2:?--nodes needs a value}; shift 2 ;;
            --children) children=${2:?--children needs a value}; shift 2 ;;
            --session) session=${2:?--session needs a value}; shift 2 ;;
            --memcached-count) mc_count=${2:?--memcached-count needs a value}; shift 2 ;;
            --redis) want_redis=1; shift ;;
            --shared-files) shared_files=1; shift ;;
            --php-value) php_values+=("${2:?--php-value needs NODE:key=value}"); shift 2 ;;
            --php-admin-value) admin_values+=("${2:?--php-admin-value needs NODE:key=value}"); shift 2 ;;
            --php-ini) ini_values+=("${2:?--php-ini needs NODE:key=value}"); shift 2 ;;
            --no-probe) no_probe+=("${2:?--no-probe needs a node name}"); shift 2 ;;
            --unix-node) unix_nodes+=("${2:?--unix-node needs a node name}"); shift 2 ;;
            --docroot) docroot_src=${2:?--docroot needs a path}; shift 2 ;;
            --copy) copies+=("${2:?--copy needs a path}"); shift 2 ;;
            --limit-extensions) limit_extensions=${2:?--limit-extensions needs a value}; shift 2 ;;
            --fastcgi-stderr) fastcgi_stderr=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
    done
    uint_in "$net" 0 255 || die "--net must be 0..255"
    uint_in "$nodes" 1 99 || die "--nodes must be 1..99"
    uint_in "$children" 1 100000 || die "--children must be >= 1"
    case $session in memcached | memcache | redis | rediscluster | files) ;; *) die "--session must be memcached, memcache, redis, rediscluster or files" ;; esac
    if [[ -n "$mc_count" ]]; then
        uint_in "$mc_count" 1 50 || die "--memcached-count must be 1..50"
    elif [[ "$session" == memcached || "$session" == memcache ]]; then
        mc_count=1
    else
        mc_count=0
    fi
    [[ "$session" == redis ]] && want_redis=1
    [[ -d "$docroot_src" ]] || die "document root source '$docroot_src' is not a directory"
    docroot_src=$(cd -P -- "$docroot_src" && pwd -P)

    need_cmd ss ps
    local php_fpm php_cli memcached_bin="" redis_bin=""
    php_fpm=$(find_php_fpm)
    php_cli=$(find_bin php)
    ((mc_count > 0)) && memcached_bin=$(find_bin memcached)
    if ((want_redis)) || [[ "$session" == rediscluster ]]; then
        redis_bin=$(find_bin redis-server)
    fi
    ((shared_files)) && need_cmd mount umount

    dir=$(abs_dir "$dir")
    COMPONENTS_FILE=$dir/cluster.components
    local canon_args
    canon_args="$orig_args"

    # Already started?
    if [[ -f "$COMPONENTS_FILE" ]]; then
        if cmd_status "$dir" >/dev/null 2>&1; then
            if [[ -f "$dir/cluster.args" && "$(cat "$dir/cluster.args")" == "$canon_args" ]]; then
                info "cluster in $dir is already running with the same options"
                cat "$dir/cluster.env"
                return 0
            fi
            die "a cluster is already running in $dir with different options ($(cat "$dir/cluster.args" 2>/dev/null)); run: $0 stop --dir $dir"
        fi
        info "cleaning up a stale/partial cluster in $dir"
        cmd_stop "$dir" 2>/dev/null || true
    fi

    local base="127.0.$net"
    local -a names=() addrs=()
    local i name ip
    for ((i = 1; i <= nodes; i++)); do
        name=$(printf 'web%02d' "$i")
        names+=("$name")
        if in_list "$name" "${unix_nodes[@]}"; then
            addrs+=("unix:$dir/$name.sock")
        else
            ip="$base.$((i + 1))"
            ((i + 1 <= 254)) || die "too many nodes for one /24"
            addrs+=("$ip:9000")
        fi
    done
    local n
    for n in "${unix_nodes[@]}" "${no_probe[@]}"; do
        in_list "$n" "${names[@]}" || die "unknown node '$n' (nodes are ${names[*]})"
    done

    # Per-node ini settings: defaults, then --php-value overrides.
    local handler="" save_path="" mc_list="" mcm_list=""
    local -a mc_addrs=() rc_ports=() rc_addrs=()
    for ((i = 0; i < mc_count; i++)); do
        mc_addrs+=("$base.1:$((11211 + i))")
        mc_list+="${mc_list:+,}$base.1:$((11211 + i))"
        mcm_list+="${mcm_list:+, }tcp://$base.1:$((11211 + i))"
    done
    local redis_addr=""
    ((want_redis)) && redis_addr="$base.1:6379"
    if [[ "$session" == rediscluster ]]; then
        rc_ports=(7000 7001 7002)
        for i in "${rc_ports[@]}"; do rc_addrs+=("$base.1:$i"); done
    fi
    case $session in
        memcached) handler=memcached; save_path=$mc_list ;;
        memcache) handler=memcache; save_path=$mcm_list ;;
        redis) handler=redis; save_path="tcp://$redis_addr" ;;
        rediscluster)
            handler=rediscluster
            save_path=""
            for i in "${rc_addrs[@]}"; do save_path+="${save_path:+&}seed[]=$i"; done
            ;;
        files) handler=files; save_path="" ;;
    esac

    declare -A ini=()     # "node|key" -> value (php_value)
    declare -A ini_set=() # "node|key" -> 1 when given by --php-value
    declare -A admin=()   # "node|key" -> value (php_admin_value)
    declare -A dini=()    # "node|key" -> value (php-fpm -d)
    local pv pnode pkv
    for pv in "${php_values[@]}" "${admin_values[@]/#/admin|}" "${ini_values[@]/#/ini|}"; do
        local layer=value
        case $pv in admin\|*) layer="admin"; pv=${pv#admin|} ;; ini\|*) layer="ini"; pv=${pv#ini|} ;; esac
        [[ "$pv" == *:*=* ]] || die "--php-$layer wants NODE:key=value, got '$pv'"
        pnode=${pv%%:*}
        pkv=${pv#*:}
        check_kv "--php-$layer" "$pkv"
        local -a targets=()
        if [[ "$pnode" == all || "$pnode" == '*' ]]; then
            targets=("${names[@]}")
        else
            in_list "$pnode" "${names[@]}" || die "--php-$layer: unknown node '$pnode' (nodes are ${names[*]})"
            targets=("$pnode")
        fi
        for n in "${targets[@]}"; do
            case $layer in
                value) ini["$n|${pkv%%=*}"]=${pkv#*=}; ini_set["$n|${pkv%%=*}"]=1 ;;
                admin) admin["$n|${pkv%%=*}"]=${pkv#*=} ;;
                ini) dini["$n|${pkv%%=*}"]=${pkv#*=} ;;
            esac
        done
    done

    # Refuse to start anything if an address is taken.
    local -a all_addrs=("${addrs[@]}" "${mc_addrs[@]}" "${rc_addrs[@]}")
    [[ -n "$redis_addr" ]] && all_addrs+=("$redis_addr")
    local busy
    if ! busy=$(check_free "${all_addrs[@]}"); then
        printf '%s\n' "$busy" >&2
        die "address(es) already in use; nothing was started"
    fi

    # From here on, a failure stops whatever was started.
    START_OK=0
    # shellcheck disable=SC2064
    trap "if [[ \$START_OK == 0 ]]; then info 'start failed; stopping what was started'; cmd_stop '$dir' || true; fi" EXIT

    rm -f -- "$COMPONENTS_FILE" "$dir/cluster.env" "$dir/cluster.args" "$dir/cluster.mounts"
    : >"$COMPONENTS_FILE"
    chmod a+rx "$dir" # nginx workers (nobody) must be able to stat DIR/www/...

    # Host copy of the document root.
    local docroot="$dir/www"
    rm -rf -- "$docroot"
    mkdir -p -- "$docroot"
    cp -a -- "$docroot_src/." "$docroot/"
    chmod -R a+rX "$docroot"

    local probe_src="$REPO/conf/probe.php"

    # Session stores first.
    local a port pidfile
    for a in "${mc_addrs[@]}"; do
        split_hostport "$a"
        port=$HP_PORT
        pidfile="$dir/memcached-$port.pid"
        register "memcached-$port" "$pidfile" "$(readlink -f "$memcached_bin")" TERM "$a"
        # Foreground + setsid so that $! is memcached's pid (memcached -d -P writes
        # the pid file only after dropping privileges to nobody).
        setsid "$memcached_bin" -l "$HP_HOST" -p "$port" -U 0 -u nobody -m 64 -c 4096 \
            </dev/null >>"$dir/memcached-$port.log" 2>&1 9>&- &
        echo "$!" >"$pidfile"
    done
    if [[ -n "$redis_addr" ]]; then
        split_hostport "$redis_addr"
        register redis "$dir/redis.pid" "$(readlink -f "$redis_bin")" TERM "$redis_addr"
        "$redis_bin" --bind "$HP_HOST" --port "$HP_PORT" --daemonize yes --pidfile "$dir/redis.pid" \
            --dir "$dir" --logfile "$dir/redis.log" --save '' --appendonly no --protected-mode no \
            </dev/null >>"$dir/redis.out" 2>&1 9>&- || { tail_file "$dir/redis.out"; tail_file "$dir/redis.log"; die "redis-server failed to start"; }
    fi
    if ((${#rc_ports[@]})); then
        start_redis_cluster "$dir" "$base.1" "$redis_bin" "${rc_ports[@]}"
    fi
    if ((shared_files)); then
        mkdir -p "$dir/shared-sessions"
        chmod 1733 "$dir/shared-sessions"
    fi

    # php-fpm nodes.
    local idx root eff_handler key d1 d2 d3
    for idx in "${!names[@]}"; do
        name=${names[$idx]}
        a=${addrs[$idx]}
        root="$dir/$name/root"
        rm -rf -- "${dir:?}/$name"
        mkdir -p "$root/tmp" "$root/var/lib/php/sessions" "$root$dir"
        chmod 1777 "$root/tmp"
        chmod 1733 "$root/var/lib/php/sessions" # as on Debian: root-owned, others may create
        if ((shared_files)); then
            mount --bind "$dir/shared-sessions" "$root/var/lib/php/sessions" ||
                die "$name: cannot bind-mount $dir/shared-sessions (--shared-files needs root)"
            echo "$root/var/lib/php/sessions" >>"$dir/cluster.mounts"
        fi
        cp -a -- "$docroot/." "$root$docroot/"
        local copy
        for copy in "${copies[@]}"; do
            [[ "$copy" == /* && -e "$copy" ]] || die "--copy $copy: not an absolute path that exists"
            mkdir -p -- "$root$(dirname -- "$copy")"
            cp -al -- "$copy" "$root$copy" 2>/dev/null || cp -a -- "$copy" "$root$copy"
        done
        # Minimal "machine" files. Without /usr/share/zoneinfo, Debian's PHP
        # (built against the system tzdata) segfaults in date() and loses
        # error_log lines; without /etc/hosts "localhost" does not resolve.
        mkdir -p "$root/usr/share" "$root/etc" "$root/dev"
        if [[ -d /usr/share/zoneinfo ]]; then
            cp -al /usr/share/zoneinfo "$root/usr/share/" 2>/dev/null || cp -a /usr/share/zoneinfo "$root/usr/share/"
        fi
        [[ -e /etc/localtime ]] && cp -a /etc/localtime "$root/etc/"
        [[ -e /etc/timezone ]] && cp -a /etc/timezone "$root/etc/"
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
        printf 'hosts: files\n' >"$root/etc/nsswitch.conf"
        local dev
        for dev in null:1:3 zero:1:5 random:1:8 urandom:1:9; do
            IFS=: read -r d1 d2 d3 <<<"$dev"
            mknod -m 666 "$root/dev/$d1" c "$d2" "$d3" 2>/dev/null || true
        done
        if [[ -f "$probe_src" ]] && ! in_list "$name" "${no_probe[@]}"; then
            mkdir -p "$root/usr/share/fpmlb"
            cp -- "$probe_src" "$root/usr/share/fpmlb/probe.php"
            chmod a+r "$root/usr/share/fpmlb/probe.php"
        fi

        # Effective session settings for this node.
        [[ -z "${ini_set["$name|session.save_handler"]:-}" ]] && ini["$name|session.save_handler"]=$handler
        eff_handler=${ini["$name|session.save_handler"]}
        if [[ -z "${ini_set["$name|session.save_path"]:-}" ]]; then
            # A node whose handler was overridden keeps the php.ini default path
            # (what a real misconfigured pool would have).
            if [[ -n "$save_path" && "$eff_handler" == "$handler" ]]; then
                ini["$name|session.save_path"]=$save_path
            fi
        fi
        [[ -z "${ini_set["$name|session.use_strict_mode"]:-}" ]] && ini["$name|session.use_strict_mode"]=0
        [[ -z "${ini_set["$name|post_max_size"]:-}" ]] && ini["$name|post_max_size"]=1G

        {
            envline ADDR "$a"
            envline ROOT "$root"
            envline CHILDREN "$children"
            envline LIMIT_EXTENSIONS "$limit_extensions"
            envline FASTCGI_STDERR "$fastcgi_stderr"
        } >"$dir/$name/node.env"
        for key in "${!ini[@]}"; do
            if [[ "$key" == "$name|"* ]]; then printf '%s=%s\n' "${key#*|}" "${ini[$key]}"; fi
        done | LC_ALL=C sort >"$dir/$name/php_value.base"
        for key in "${!admin[@]}"; do
            if [[ "$key" == "$name|"* ]]; then printf '%s=%s\n' "${key#*|}" "${admin[$key]}"; fi
        done | LC_ALL=C sort >"$dir/$name/php_admin_value.base"
        for key in "${!dini[@]}"; do
            if [[ "$key" == "$name|"* ]]; then printf '%s=%s\n' "${key#*|}" "${dini[$key]}"; fi
        done | LC_ALL=C sort >"$dir/$name/php_ini.base"
        for layer in php_value php_admin_value php_ini; do
            cp -- "$dir/$name/$layer.base" "$dir/$name/$layer.now"
        done
        write_pool_conf "$dir" "$name"
        register "$name" "$dir/$name.pid" "$(readlink -f "$php_fpm")" QUIT "$a"
        launch_node "$dir" "$name" "$php_fpm"
    done

    # Wait for every listener (and pid file) to be ready.
    local label exe sig deadline=$((SECONDS + 10)) pending
    while :; do
        pending=""
        while IFS='|' read -r label pidfile exe sig a; do
            local pid
            pid=$(read_pidfile "$pidfile")
            if [[ -n "$pid" ]] && ! pid_alive "$pid" "$exe"; then
                tail_file "$dir/$label.log"
                tail_file "$dir/$label/php-fpm.log"
                die "$label (pid $pid) exited during startup"
            fi
            if [[ -z "$pid" ]] || ! is_listening "$a"; then
                pending+=" $label($a)"
            fi
        done <"$COMPONENTS_FILE"
        [[ -z "$pending" ]] && break
        ((SECONDS < deadline)) || die "not listening after 10 s:$pending"
        sleep 0.1
    done

    # Smoke test every node through FastCGI: ping (no file access) and, with the
    # bundled test app, index.php (proves the chroot layout matches DIR/www).
    local outp check_index=0
    cmp -s "$docroot/index.php" "$HERE/www/index.php" && check_index=1
    for idx in "${!names[@]}"; do
        name=${names[$idx]}
        a=${addrs[$idx]}
        ping_node "$name" "$a" "$php_cli"
        if ((check_index)); then
            outp=$("$php_cli" "$HERE/fcgi.php" "$a" "$docroot/index.php" --docroot "$docroot" --timeout 5 2>&1) ||
                die "$name ($a): FastCGI request for $docroot/index.php failed: $outp"
            [[ "$outp" == *"hello from $name"* ]] || { tail_file "$dir/$name/php-fpm.log"; die "$name ($a): index.php answered: $outp"; }
        fi
    done

    # Facts for other scripts.
    local nodes_str="" names_str="" handlers_str=""
    for idx in "${!names[@]}"; do
        nodes_str+="${nodes_str:+ }${names[$idx]}=${addrs[$idx]}"
        names_str+="${names_str:+ }${names[$idx]}"
        handlers_str+="${handlers_str:+ }${names[$idx]}=${ini["${names[$idx]}|session.save_handler"]}"
    done
    local mc_str=""
    for a in "${mc_addrs[@]}"; do mc_str+="${mc_str:+ }$a"; done
    local disp_path=$save_path
    [[ "$session" == files ]] && disp_path=/var/lib/php/sessions
    {
        echo "# generated by integration/cluster.sh start $canon_args"
        envline DIR "$dir"
        envline NET "$net"
        envline LB_IP "$base.1"
        envline NODES "$nodes_str"
        envline NODE_NAMES "$names_str"
        envline NODE_SESSION_HANDLERS "$handlers_str"
        envline CHILDREN "$children"
        envline DOCROOT "$docroot"
        envline MEMCACHED "$mc_str"
        envline REDIS "$redis_addr"
        envline REDIS_CLUSTER "${rc_addrs[*]}"
        envline SHARED_SESSIONS "$( ((shared_files)) && echo "$dir/shared-sessions")"
        envline SESSION_HANDLER "$handler"
        envline SESSION_PATH "$disp_path"
        envline PHP_FPM "$php_fpm"
    } >"$dir/cluster.env"
    printf '%s\n' "$canon_args" >"$dir/cluster.args"
    START_OK=1
    trap - EXIT
    info "cluster started in $dir; document root (host path): $docroot"
    cat "$dir/cluster.env"
}

# ---------------------------------------------------------------- reconfigure

cmd_reconfigure() {
    local dir=$1
    shift
    local node_arg=""
    local -a values=() admins=() inis=() user_inis=()
    while (($#)); do
        case $1 in
            --node) node_arg=${2:?--node needs a name}; shift 2 ;;
            --php-value) check_kv --php-value "${2:?--php-value needs key=value}"; values+=("$2"); shift 2 ;;
            --php-admin-value) check_kv --php-admin-value "${2:?--php-admin-value needs key=value}"; admins+=("$2"); shift 2 ;;
            --php-ini) check_kv --php-ini "${2:?--php-ini needs key=value}"; inis+=("$2"); shift 2 ;;
            --user-ini) check_kv --user-ini "${2:?--user-ini needs key=value}"; user_inis+=("$2"); shift 2 ;;
            *) die "reconfigure: unknown option '$1' (see --help)" ;;
        esac
    done
    [[ -n "$node_arg" ]] || die "reconfigure needs --node NODE"
    [[ -f "$dir/cluster.env" ]] || die "no cluster recorded in $dir"
    COMPONENTS_FILE=$dir/cluster.components
    local DOCROOT SESSION_HANDLER NODE_NAMES PHP_FPM
    # shellcheck source=/dev/null
    source "$dir/cluster.env"
    local php_cli
    php_cli=$(find_bin php)
    local -a targets=()
    local name
    if [[ "$node_arg" == all ]]; then
        read -r -a targets <<<"$NODE_NAMES"
    else
        IFS=, read -r -a targets <<<"$node_arg"
    fi
    local -a all_names=()
    read -r -a all_names <<<"$NODE_NAMES"
    for name in "${targets[@]}"; do
        in_list "$name" "${all_names[@]}" || die "reconfigure: unknown node '$name' (nodes are $NODE_NAMES)"
    done
    # Another handler without a save path of its own keeps php.ini's default path, as at start.
    local kv drop_path=0 has_path=0
    for kv in "${values[@]}" "${admins[@]}"; do
        if [[ "${kv%%=*}" == session.save_handler && "${kv#*=}" != "$SESSION_HANDLER" ]]; then drop_path=1; fi
        if [[ "${kv%%=*}" == session.save_path ]]; then has_path=1; fi
    done
    local -a group=()
    local pid ADDR ROOT CHILDREN
    for name in "${targets[@]}"; do
        merge_kv "$dir/$name/php_value.base" "${values[@]}" >"$dir/$name/php_value.now"
        if ((drop_path && !has_path)); then
            grep -v '^session\.save_path=' "$dir/$name/php_value.now" >"$dir/$name/php_value.tmp" || true
            mv -- "$dir/$name/php_value.tmp" "$dir/$name/php_value.now"
        fi
        merge_kv "$dir/$name/php_admin_value.base" "${admins[@]}" >"$dir/$name/php_admin_value.now"
        merge_kv "$dir/$name/php_ini.base" "${inis[@]}" >"$dir/$name/php_ini.now"
        # shellcheck source=/dev/null
        source "$dir/$name/node.env"
        if ((${#user_inis[@]})); then
            printf '%s\n' "${user_inis[@]}" >"$ROOT$DOCROOT/.user.ini"
            chmod a+r "$ROOT$DOCROOT/.user.ini"
        else
            rm -f -- "$ROOT$DOCROOT/.user.ini"
        fi
        write_pool_conf "$dir" "$name"
        pid=$(read_pidfile "$dir/$name.pid")
        if [[ -n "$pid" ]]; then group+=("$name|$pid|$(readlink -f "$PHP_FPM")|QUIT"); fi
    done
    ((${#group[@]} == 0)) || stop_group "${group[@]}"
    for name in "${targets[@]}"; do
        # shellcheck source=/dev/null
        source "$dir/$name/node.env"
        launch_node "$dir" "$name" "$PHP_FPM"
        wait_for "$name listening on $ADDR" 10 is_listening "$ADDR" || die "$name is not listening on $ADDR"
        ping_node "$name" "$ADDR" "$php_cli"
        info "$name restarted with: ${values[*]} ${admins[*]/#/admin:} ${inis[*]/#/ini:} ${user_inis[*]/#/.user.ini:}"
    done
}

# ----------------------------------------------------------------------- main

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

# Serialize start/stop/status on the same DIR (concurrent tests use different DIRs).
lock_dir() {
    local d
    d=$(abs_dir "$1")
    exec 9>"$d/.cluster.lock"
    flock -w 60 9 || die "another cluster.sh is busy with $d (lock $d/.cluster.lock)"
}

case $cmd in
    start) lock_dir "$dir"; cmd_start "$dir" "${args[@]}" ;;
    reconfigure)
        [[ -d "$dir" ]] || die "$dir does not exist"
        lock_dir "$dir"
        cmd_reconfigure "$(cd -P -- "$dir" && pwd -P)" "${args[@]}"
        ;;
    stop)
        ((${#args[@]} == 0)) || die "stop takes only --dir"
        [[ -d "$dir" ]] || { info "$dir does not exist; nothing to stop"; exit 0; }
        lock_dir "$dir"
        cmd_stop "$(cd -P -- "$dir" && pwd -P)"
        ;;
    status)
        ((${#args[@]} == 0)) || die "status takes only --dir"
        [[ -d "$dir" ]] || { echo "no cluster recorded in $dir"; exit 3; }
        cmd_status "$(cd -P -- "$dir" && pwd -P)"
        ;;
    -h | --help | help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
esac
