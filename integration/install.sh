#!/usr/bin/env bash
# Install the Debian packages the tests need (Debian 12 "bookworm"), and with
# --bench / --demo what `make bench` / `make demo` need on top.
# Fast no-op when everything is present. Never starts system services.
set -euo pipefail

PROG=install.sh
ORIG_ARGS=("$@")

usage() {
    cat <<'EOF'
usage: install.sh [--bench] [--demo] [--with-tools] [--with-browser] [--dry-run]
  (no option)     what `make test` runs: php-fpm and PHP's session extensions,
                  memcached, Redis, nginx, chromium, Python's OpenMetrics parser
  --bench         also what only integration/bench.sh uses: h2load
  --demo          also curl and openssl, for integration/demo.sh
  --with-tools    also install shellcheck and libfcgi-bin (cgi-fcgi)
  --with-browser  accepted for compatibility: chromium is now always installed
  --dry-run       only report what is missing
EOF
}

# What the tests use (checked with grep over tests/ and the scripts they run):
# php-fpm nodes (cluster.sh), php-cli (integration/fcgi.php, tests/store.rs),
# redis-cli from redis-tools (tests/store.rs), nginx (tests/e2e_proxy.rs),
# ss from iproute2 and ps from procps (cluster.sh), pkill from procps
# (tests/e2e_health.rs), setsid, flock and setpriv from util-linux (cluster.sh,
# tests/support).
PACKAGES=(
    php-fpm php-cli php-memcached php-memcache php-redis
    memcached redis-server redis-tools nginx-light
    # tests/store.rs: a memcached user for SASL (saslpasswd2).
    sasl2-bin
    iproute2 procps util-linux
    # tests/e2e_admin.rs: the status page in a headless browser, and /metrics
    # read by the Python client's OpenMetrics parser (Debian's python3).
    chromium python3-prometheus-client
    # tests/e2e_acme.rs: an ACME CA (pebble, pebble-challtestsrv);
    # tests/e2e_tls.rs and e2e_proxy_protocol.rs: curl, openssl s_client,
    # HAProxy in TCP mode with send-proxy-v2.
    pebble curl openssl haproxy
    # tests/e2e_phpmyadmin.rs: phpMyAdmin as Debian ships it, logged in to
    # a MariaDB server the test starts, in chromium through fpmlb and nginx.
    phpmyadmin mariadb-server
    # tests/soak.rs (integration/soak.sh): the load generator.
    wrk
)
# integration/bench.sh only: h2load from nghttp2-client (HTTP/2), hey (the
# fixed-rate, pinned-worker, two-instance and beside cases); wrk, HAProxy,
# curl and openssl are in the test set already.
BENCH_PACKAGES=(nghttp2-client hey)
with_browser=0 with_tools=0 with_bench=0 with_demo=0 dry_run=0
while (($#)); do
    case $1 in
        --bench) with_bench=1 ;;
        --demo) with_demo=1 ;;
        --with-browser) with_browser=1 ;;
        --with-tools) with_tools=1 ;;
        --dry-run) dry_run=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; echo "$PROG: error: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
# chromium is in PACKAGES already; --with-browser is kept so old calls work.
: "$with_browser"
((with_tools)) && PACKAGES+=(shellcheck libfcgi-bin)
((with_bench)) && PACKAGES+=("${BENCH_PACKAGES[@]}")
((with_demo)) && PACKAGES+=(curl openssl)

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "this script needs a Debian-based system (dpkg-query/apt-get not found)"
fi

# installed PKG: the package is installed, or (for PHP's version-less
# metapackages such as php-cli) some phpX.Y-... package that provides it is.
installed() {
    local pkg=$1 st
    st=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$st" == installed ]] && return 0
    if [[ "$pkg" == php-* ]]; then
        dpkg-query -W -f='${Package} ${db:Status-Status}\n' "php[0-9]*${pkg#php}" 2>/dev/null |
            awk '$2 == "installed" { found = 1 } END { exit !found }' && return 0
    fi
    return 1
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "$PROG: all packages present: ${PACKAGES[*]}"
    exit 0
fi
echo "$PROG: missing packages: ${missing[*]}"
((dry_run)) && exit 1

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "$PROG: not root; re-running with sudo"
        exec sudo -- "$0" "${ORIG_ARGS[@]}"
    fi
    die "must run as root to install: ${missing[*]}"
fi

# Keep Debian's maintainer scripts from starting system memcached/redis/nginx/
# php-fpm/haproxy services, which would take the ports the tests use.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if ((created_policy)); then
        rm -f -- "$POLICY"
    fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# temporary, created by fpmlb integration/install.sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
# phpmyadmin's maintainer scripts: no database set-up (dbconfig-common would
# want a MySQL server), no web server reconfigured.
if command -v debconf-set-selections >/dev/null 2>&1; then
    printf '%s\n' \
        'phpmyadmin phpmyadmin/dbconfig-install boolean false' \
        'phpmyadmin phpmyadmin/reconfigure-webserver multiselect' |
        debconf-set-selections
fi
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

# Verify the pieces the scripts rely on.
fpm=$(compgen -G '/usr/sbin/php-fpm[0-9]*' | sort -V | tail -n 1 || true)
[[ -n "$fpm" ]] || die "php-fpm binary not found after installation"
mods=$("$fpm" -m 2>/dev/null || true)
for ext in memcached memcache redis; do
    grep -qx "$ext" <<<"$mods" || die "PHP extension '$ext' not loaded by $fpm"
done
/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null ||
    die "python3-prometheus-client installed but /usr/bin/python3 cannot import its OpenMetrics parser"
echo "$PROG: installed: ${missing[*]} (php-fpm: $fpm)"
