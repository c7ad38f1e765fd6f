# shellcheck shell=bash
# Helpers shared by cluster.sh, nginx.sh and haproxy.sh. Source it; do not run it.
# Expects the caller to have set PROG (used in messages) and `set -euo pipefail`.

umask 022

die() {
    printf '%s: error: %s\n' "${PROG:-integration}" "$*" >&2
    exit 1
}

info() {
    printf '%s: %s\n' "${PROG:-integration}" "$*" >&2 2>/dev/null || true
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' not found; run integration/install.sh first"
    done
}

# abs_dir DIR: create DIR if needed and print its physical absolute path.
abs_dir() {
    mkdir -p -- "$1" || die "cannot create directory $1"
    (cd -P -- "$1" && pwd -P)
}

# find_php_fpm: print the php-fpm binary ($PHP_FPM, php-fpm in PATH/sbin, newest php-fpmX.Y).
find_php_fpm() {
    if [[ -n "${PHP_FPM:-}" ]]; then
        [[ -x "$PHP_FPM" ]] || die "PHP_FPM=$PHP_FPM is not executable"
        printf '%s\n' "$PHP_FPM"
        return
    fi
    local c
    c=$(PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin" command -v php-fpm 2>/dev/null || true)
    if [[ -n "$c" ]]; then
        printf '%s\n' "$c"
        return
    fi
    c=$(compgen -G '/usr/sbin/php-fpm[0-9]*' | sort -V | tail -n 1 || true)
    [[ -n "$c" ]] || c=$(compgen -G '/usr/local/sbin/php-fpm*' | sort -V | tail -n 1 || true)
    [[ -n "$c" && -x "$c" ]] || die "no php-fpm binary found (looked for php-fpm, /usr/sbin/php-fpmX.Y); run integration/install.sh"
    printf '%s\n' "$c"
}

# find_bin NAME: absolute path of NAME, also looking in the sbin directories.
find_bin() {
    local c
    c=$(PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin" command -v "$1" 2>/dev/null || true)
    [[ -n "$c" ]] || die "'$1' not found; run integration/install.sh first"
    printf '%s\n' "$c"
}

# split_hostport ADDR -> sets HP_HOST / HP_PORT (IPv4 "a.b.c.d:port" only).
split_hostport() {
    local a=$1
    [[ "$a" =~ ^([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+):([0-9]+)$ ]] || die "bad address '$a' (want IPv4:PORT)"
    HP_HOST=${BASH_REMATCH[1]}
    HP_PORT=${BASH_REMATCH[2]}
}

# uint_in VALUE MIN MAX: VALUE is a decimal integer within [MIN, MAX].
uint_in() {
    [[ "$1" =~ ^[0-9]{1,9}$ ]] || return 1
    (( 10#$1 >= $2 && 10#$1 <= $3 ))
}

have_ss() { command -v ss >/dev/null 2>&1; }

# tcp_listeners IP PORT: print `ss -ltnp` lines of sockets that would make a
# bind to IP:PORT fail (exact address or a wildcard on the same port).
tcp_listeners() {
    local ip=$1 port=$2
    have_ss || return 0
    ss -Hltnp 2>/dev/null | awk -v want="$ip:$port" -v port="$port" '
        { a = $4
          if (a == want || a == "0.0.0.0:" port || a == "*:" port || a == "[::]:" port) print }'
}

# tcp_is_listening IP PORT: true if something listens on exactly IP:PORT (or wildcard).
tcp_is_listening() {
    local ip=$1 port=$2
    if have_ss; then
        [[ -n "$(tcp_listeners "$ip" "$port")" ]]
    else
        # Fallback without iproute2: try to connect.
        (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null
    fi
}

# describe_listener IP PORT: human readable "who holds IP:PORT".
describe_listener() {
    local ip=$1 port=$2 lines line procs
    lines=$(tcp_listeners "$ip" "$port")
    if [[ -z "$lines" ]]; then
        printf '%s:%s is in use (process unknown; install iproute2 for details)\n' "$ip" "$port"
        return
    fi
    while IFS= read -r line; do
        procs=$(grep -o 'users:(.*)' <<<"$line" || true)
        [[ -n "$procs" ]] || procs="(process not visible; not root?)"
        printf '%s:%s is already in use: listener %s held by %s\n' "$ip" "$port" "$(awk '{print $4}' <<<"$line")" "$procs"
    done <<<"$lines"
}

# check_free ADDR...: ADDR is IP:PORT or unix:PATH. Prints one line per busy
# address and returns 1 if any is busy.
check_free() {
    local a busy=0 p
    for a in "$@"; do
        if [[ "$a" == unix:* ]]; then
            p=${a#unix:}
            if [[ -S "$p" ]] && have_ss && ss -Hlx 2>/dev/null | awk '{print $5}' | grep -qxF -- "$p"; then
                printf 'unix socket %s is in use: %s\n' "$p" "$(ss -Hlxp 2>/dev/null | grep -F -- "$p" | grep -o 'users:(.*)' || echo '?')"
                busy=1
            fi
        else
            split_hostport "$a"
            if tcp_is_listening "$HP_HOST" "$HP_PORT"; then
                describe_listener "$HP_HOST" "$HP_PORT"
                busy=1
            fi
        fi
    done
    return "$busy"
}

# unix_is_listening PATH
unix_is_listening() {
    local p=$1
    [[ -S "$p" ]] || return 1
    if have_ss; then
        ss -Hlx 2>/dev/null | awk '{print $5}' | grep -qxF -- "$p"
    fi
}

# is_listening ADDR (IP:PORT or unix:PATH)
is_listening() {
    if [[ "$1" == unix:* ]]; then
        unix_is_listening "${1#unix:}"
    else
        split_hostport "$1"
        tcp_is_listening "$HP_HOST" "$HP_PORT"
    fi
}

# pid_state PID: print the state letter from /proc (empty if no such process).
pid_state() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    printf '%s\n' "${s%% *}"
}

# pid_alive PID [EXE]: the process exists, is not a zombie and (if EXE given)
# runs EXE. Protects against signalling a recycled pid.
pid_alive() {
    local pid=$1 exe=${2:-} st real
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    st=$(pid_state "$pid")
    [[ -n "$st" && "$st" != Z && "$st" != X ]] || return 1
    if [[ -n "$exe" ]]; then
        real=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
        real=${real% (deleted)}
        [[ -z "$real" || "$real" == "$exe" ]] || return 1
    fi
    return 0
}

# read_pidfile FILE: print the pid in FILE (empty if none).
read_pidfile() {
    local p=""
    if [[ -f "$1" ]]; then
        read -r p <"$1" 2>/dev/null || true
    fi
    [[ "$p" =~ ^[0-9]+$ ]] && printf '%s\n' "$p"
    return 0
}

# stop_group "LABEL|PID|EXE|SIGNAL"...: signal every PID that still runs EXE,
# then wait (in parallel) up to STOP_TIMEOUT (10) seconds for all of them; the
# ones still alive get SIGKILL together with their direct children (php-fpm
# workers of a killed master would otherwise keep serving).
stop_group() {
    local e label pid exe sig i k alive
    local -a labels=() pids=() exes=() kids=()
    # A closed stdout/stderr (e.g. `... | head`) must not abort a stop half-way.
    trap '' PIPE
    for e in "$@"; do
        IFS='|' read -r label pid exe sig <<<"$e"
        if ! pid_alive "$pid" "$exe"; then
            info "$label: not running (pid $pid)"
            continue
        fi
        labels+=("$label")
        pids+=("$pid")
        exes+=("$exe")
        kids+=("$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ' || true)")
        kill "-$sig" "$pid" 2>/dev/null || true
    done
    ((${#pids[@]})) || return 0
    for ((i = 0; i < ${STOP_TIMEOUT:-10} * 10; i++)); do
        alive=0
        for k in "${!pids[@]}"; do
            pid_alive "${pids[$k]}" "${exes[$k]}" && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for k in "${!pids[@]}"; do
        pid=${pids[$k]}
        if pid_alive "$pid" "${exes[$k]}"; then
            info "${labels[$k]}: pid $pid did not exit within ${STOP_TIMEOUT:-10}s; sending SIGKILL"
            kids[k]="${kids[$k]} $(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ' || true)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for k in "${!pids[@]}"; do
        local c
        for c in ${kids[$k]}; do
            for ((i = 0; i < 20; i++)); do
                pid_alive "$c" "${exes[$k]}" || break
                sleep 0.1
            done
            if pid_alive "$c" "${exes[$k]}"; then
                info "${labels[$k]}: child pid $c still alive; sending SIGKILL"
                kill -KILL "$c" 2>/dev/null || true
            fi
        done
        info "${labels[$k]}: stopped (pid ${pids[$k]})"
    done
}

# stop_pid LABEL PID EXE SIGNAL: stop_group for a single process.
stop_pid() {
    stop_group "$1|$2|$3|$4"
}

# wait_for COND_DESC TIMEOUT_SECONDS CMD...: poll CMD every 0.1 s.
wait_for() {
    local desc=$1 t=$2 i
    shift 2
    for ((i = 0; i < t * 10; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 0.1
    done
    info "timed out after ${t}s waiting for $desc"
    return 1
}

# tail_file FILE: show the end of a log file on stderr (for failure reports).
tail_file() {
    if [[ -s "$1" ]]; then
        printf -- '--- last lines of %s ---\n' "$1" >&2
        tail -n 20 -- "$1" >&2
        printf -- '---\n' >&2
    fi
}
