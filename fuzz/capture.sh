#!/usr/bin/env bash
# Writes seeds from real php-fpm output into fuzz/corpus/: starts one php-fpm
# node (integration/cluster.sh, net 199), sends it FastCGI requests with a
# small client (fuzz/capture.py) and stores what php-fpm answers: the raw
# record stream (fastcgi_record/php-NAME) and its STDOUT up to the body
# (cgi_head/php-NAME). Loopback only; stops what it started. Run it again
# after a PHP upgrade; the seeds are committed, so `make fuzz` needs no
# php-fpm.
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -P -- "$HERE/.." && pwd -P)
NET=199
work=$(mktemp -d "${TMPDIR:-/tmp}/fpmlb-capture-XXXX")
trap '"$REPO/integration/cluster.sh" stop --dir "$work/cluster" >/dev/null 2>&1 || true; rm -rf -- "$work"' EXIT

# The bundled test app plus scripts with the heads worth seeding.
mkdir -p "$work/www"
cp -a "$REPO/integration/www/." "$work/www/"
cat >"$work/www/heads.php" <<'PHP'
<?php
switch ($_GET['case'] ?? '') {
    case 'status': header('Status: 404 Not Found'); header('X-A: 1'); break;
    case 'location': header('Location: /login?next=%2F'); break;
    case 'created': http_response_code(201); header('Location: /item/7'); break;
    case 'cookies': setcookie('a', '1', ['httponly' => true]); setcookie('b', 'x y', ['samesite' => 'Lax']); break;
    case 'length': header('Content-Length: 5'); echo 'hello'; exit;
    case 'hop': header('Connection: close'); header('Transfer-Encoding: chunked'); header('Keep-Alive: x'); break;
    case 'warning': trigger_error('seed warning', E_USER_WARNING); break;
    case 'fatal': undefined_function_for_seed(); break;
    case 'stderr': file_put_contents('php://stderr', "to stderr\n"); break;
}
echo "body\n";
PHP
"$REPO/integration/cluster.sh" start --dir "$work/cluster" --net "$NET" --nodes 1 --children 2 \
    --session files --docroot "$work/www" >"$work/start.log" 2>&1 || { cat "$work/start.log" >&2; exit 1; }
# shellcheck disable=SC1091,SC2153
docroot=$(source "$work/cluster/cluster.env" && printf '%s' "$DOCROOT")
python3 "$HERE/capture.py" "127.0.$NET.2:9000" "$docroot" "$HERE/corpus"
