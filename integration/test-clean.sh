#!/usr/bin/env bash
# Stops what test runs left behind and removes their state folders (what
# `make test-clean` runs; tests/support runs it on one folder before reusing it).
set -euo pipefail

# shellcheck disable=SC2034 # used by lib.sh
PROG=test-clean.sh
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

usage() {
    cat <<'EOF'
usage: integration/test-clean.sh [DIR...]

Each test keeps its state in ${TMPDIR:-/tmp}/fpmlb-test/netN, named after
its network 127.0.N.x (tests/support/nets.rs). A test that was killed leaves
its php-fpm masters, memcached, Redis and nginx running (they are daemons,
not children of the test). For each DIR (default: every folder under
${TMPDIR:-/tmp}/fpmlb-test, and the older ${TMPDIR:-/tmp}/fpmlb-test-*
folders named by pid), this stops every cluster (cluster.components), nginx
(nginx.pid) and HAProxy (haproxy.pid) recorded in DIR or one level below,
each by its own script and pid files, then removes DIR.

fpmlb, redis-server and the other processes a test spawns itself die with
the test (setpriv --pdeathsig); they keep no pid file.
EOF
}

# A folder this script may remove: a test's, by its name.
is_test_dir() {
    local base
    base=$(basename -- "$1")
    [[ "$base" =~ ^net[0-9]{1,3}$ || "$base" == fpmlb-test-* ]]
}

clean_dir() {
    local dir=$1 f
    [[ -d "$dir" ]] || return 0
    is_test_dir "$dir" || die "$dir is not a test state folder (netN or fpmlb-test-*); not touching it"
    # Clusters first: nginx/HAProxy are their clients.
    while IFS= read -r -d '' f; do
        "$HERE/cluster.sh" stop --dir "$(dirname -- "$f")" || true
    done < <(find "$dir" -maxdepth 2 -name cluster.components -print0)
    while IFS= read -r -d '' f; do
        "$HERE/nginx.sh" stop --dir "$(dirname -- "$f")" || true
    done < <(find "$dir" -maxdepth 2 -name nginx.pid -print0)
    while IFS= read -r -d '' f; do
        "$HERE/haproxy.sh" stop --dir "$(dirname -- "$f")" || true
    done < <(find "$dir" -maxdepth 2 -name haproxy.pid -print0)
    rm -rf -- "$dir"
}

dirs=()
while (($#)); do
    case $1 in
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option '$1'" ;;
        *) dirs+=("$1"); shift ;;
    esac
done

if ((${#dirs[@]} == 0)); then
    tmp=${TMPDIR:-/tmp}
    shopt -s nullglob
    dirs=("$tmp"/fpmlb-test/net* "$tmp"/fpmlb-test-*)
    shopt -u nullglob
    if ((${#dirs[@]} == 0)); then
        info "nothing to clean under $tmp"
        exit 0
    fi
fi
for d in "${dirs[@]}"; do
    clean_dir "$d"
    info "cleaned $d"
done
