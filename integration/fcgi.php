<?php
// Minimal FastCGI client (responder role), for talking to a php-fpm node
// directly, without a web server in between. Needs only php-cli.
//
// usage: php fcgi.php ADDR SCRIPT_FILENAME [options]
//   ADDR               127.0.0.2:9000 | unix:/path/to.sock | /path/to.sock
//   SCRIPT_FILENAME    absolute path as the node sees it (e.g. $DOCROOT/env.php),
//                      or a php-fpm ping/status path such as /fpm-ping
//   --uri URI          REQUEST_URI (default: SCRIPT_NAME); its query becomes QUERY_STRING
//   --script-name S    SCRIPT_NAME (default: basename part of SCRIPT_FILENAME below
//                      DOCUMENT_ROOT, or SCRIPT_FILENAME itself)
//   --docroot D        DOCUMENT_ROOT (default: none)
//   --method M         REQUEST_METHOD (default GET, POST when --body is given)
//   --body FILE        send FILE ('-' = stdin) as FastCGI STDIN
//   --param K=V        extra/overriding parameter (repeatable)
//   --timeout SEC      I/O timeout (default 30)
//   --quiet-stderr     do not copy FastCGI STDERR records to our stderr
// Output: the raw FastCGI STDOUT stream (CGI headers, blank line, body).
// Exit status: 0 if END_REQUEST arrived with protocolStatus 0, 2 on
// connection/protocol errors, 3 on timeout.

function fail(int $code, string $msg): never
{
    fwrite(STDERR, "fcgi.php: $msg\n");
    exit($code);
}

function record(int $type, int $id, string $content): string
{
    $len = strlen($content);
    $pad = (8 - ($len % 8)) % 8;
    return pack('CCnnCC', 1, $type, $id, $len, $pad, 0) . $content . str_repeat("\0", $pad);
}

function nv_len(int $n): string
{
    return $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
}

function read_exact($sock, int $n): string
{
    $buf = '';
    while (strlen($buf) < $n) {
        $chunk = fread($sock, $n - strlen($buf));
        if ($chunk === false || $chunk === '') {
            $meta = stream_get_meta_data($sock);
            if ($meta['timed_out']) {
                fail(3, 'timeout while reading the response');
            }
            fail(2, 'connection closed before END_REQUEST (' . strlen($buf) . "/$n bytes of a record)");
        }
        $buf .= $chunk;
    }
    return $buf;
}

$args = array_slice($argv, 1);
$pos = [];
$opt = ['uri' => null, 'script-name' => null, 'docroot' => null, 'method' => null,
        'body' => null, 'timeout' => '30'];
$extra = [];
$quietStderr = false;
for ($i = 0; $i < count($args); $i++) {
    $a = $args[$i];
    if ($a === '--quiet-stderr') {
        $quietStderr = true;
    } elseif ($a === '--param') {
        $kv = $args[++$i] ?? fail(2, '--param needs K=V');
        $eq = strpos($kv, '=');
        if ($eq === false) {
            fail(2, "--param needs K=V, got '$kv'");
        }
        $extra[substr($kv, 0, $eq)] = substr($kv, $eq + 1);
    } elseif (strncmp($a, '--', 2) === 0 && array_key_exists(substr($a, 2), $opt)) {
        $opt[substr($a, 2)] = $args[++$i] ?? fail(2, "$a needs a value");
    } elseif ($a === '-h' || $a === '--help') {
        fwrite(STDOUT, "usage: php fcgi.php ADDR SCRIPT_FILENAME [--uri U] [--script-name S] [--docroot D] [--method M] [--body FILE] [--param K=V]... [--timeout S] [--quiet-stderr]\n");
        exit(0);
    } else {
        $pos[] = $a;
    }
}
if (count($pos) !== 2) {
    fail(2, 'usage: php fcgi.php ADDR SCRIPT_FILENAME [options] (see --help)');
}
[$addr, $scriptFilename] = $pos;

$docroot = $opt['docroot'];
$scriptName = $opt['script-name'];
if ($scriptName === null) {
    $scriptName = $scriptFilename;
    if ($docroot !== null && strncmp($scriptFilename, rtrim($docroot, '/') . '/', strlen(rtrim($docroot, '/')) + 1) === 0) {
        $scriptName = substr($scriptFilename, strlen(rtrim($docroot, '/')));
    }
}
$uri = $opt['uri'] ?? $scriptName;
$q = strpos($uri, '?');
$query = $q === false ? '' : substr($uri, $q + 1);
$docUri = $q === false ? $uri : substr($uri, 0, $q);

$body = '';
if ($opt['body'] !== null) {
    $body = $opt['body'] === '-' ? stream_get_contents(STDIN) : @file_get_contents($opt['body']);
    if ($body === false) {
        fail(2, "cannot read body file {$opt['body']}");
    }
}
$method = $opt['method'] ?? ($opt['body'] !== null ? 'POST' : 'GET');

$params = [
    'GATEWAY_INTERFACE' => 'CGI/1.1',
    'SERVER_SOFTWARE' => 'fcgi.php',
    'SERVER_PROTOCOL' => 'HTTP/1.1',
    'REQUEST_METHOD' => $method,
    'SCRIPT_FILENAME' => $scriptFilename,
    'SCRIPT_NAME' => $scriptName,
    'REQUEST_URI' => $uri,
    'DOCUMENT_URI' => $docUri,
    'QUERY_STRING' => $query,
    'REMOTE_ADDR' => '127.0.0.1',
    'REMOTE_PORT' => '0',
    'SERVER_ADDR' => '127.0.0.1',
    'SERVER_PORT' => '80',
    'SERVER_NAME' => 'localhost',
    'REDIRECT_STATUS' => '200',
];
if ($docroot !== null) {
    $params['DOCUMENT_ROOT'] = $docroot;
}
if ($opt['body'] !== null) {
    $params['CONTENT_LENGTH'] = (string) strlen($body);
    $params['CONTENT_TYPE'] = 'application/octet-stream';
}
foreach ($extra as $k => $v) {
    $params[$k] = $v;
}

if (strncmp($addr, 'unix:', 5) === 0) {
    $remote = 'unix://' . substr($addr, 5);
} elseif ($addr !== '' && $addr[0] === '/') {
    $remote = 'unix://' . $addr;
} else {
    $remote = 'tcp://' . $addr;
}
$timeout = (float) $opt['timeout'];
$sock = @stream_socket_client($remote, $errno, $errstr, $timeout);
if ($sock === false) {
    fail(2, "cannot connect to $addr: $errstr ($errno)");
}
stream_set_timeout($sock, (int) ceil($timeout));

$id = 1;
$out = record(1, $id, pack('nCx5', 1, 0)); // BEGIN_REQUEST, RESPONDER, no keep-conn
$pairs = '';
foreach ($params as $k => $v) {
    $k = (string) $k;
    $v = (string) $v;
    $pairs .= nv_len(strlen($k)) . nv_len(strlen($v)) . $k . $v;
}
foreach (str_split($pairs, 65535) as $chunk) {
    if ($chunk !== '') {
        $out .= record(4, $id, $chunk);
    }
}
$out .= record(4, $id, '');
if ($body !== '') {
    foreach (str_split($body, 65535) as $chunk) {
        $out .= record(5, $id, $chunk);
    }
}
$out .= record(5, $id, '');
for ($off = 0; $off < strlen($out);) {
    $w = fwrite($sock, substr($out, $off, 1 << 20));
    if ($w === false || $w === 0) {
        fail(2, 'write failed (connection closed by peer?)');
    }
    $off += $w;
}

while (true) {
    $h = unpack('Cversion/Ctype/nid/nlen/Cpad/Creserved', read_exact($sock, 8));
    $content = $h['len'] > 0 ? read_exact($sock, $h['len']) : '';
    if ($h['pad'] > 0) {
        read_exact($sock, $h['pad']);
    }
    switch ($h['type']) {
        case 6: // STDOUT
            fwrite(STDOUT, $content);
            break;
        case 7: // STDERR
            if (!$quietStderr) {
                fwrite(STDERR, $content);
            }
            break;
        case 3: // END_REQUEST
            $e = unpack('NappStatus/CprotocolStatus', $content);
            fclose($sock);
            if ($e['protocolStatus'] !== 0) {
                fail(2, "END_REQUEST protocolStatus={$e['protocolStatus']} appStatus={$e['appStatus']}");
            }
            exit(0);
        default:
            fail(2, "unexpected record type {$h['type']}");
    }
}
