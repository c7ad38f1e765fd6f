<?php
// Dumps the CGI/FastCGI environment as PHP sees it, as one JSON object.
$keys = [
    'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'PATH_TRANSLATED', 'PHP_SELF',
    'REQUEST_URI', 'DOCUMENT_URI', 'DOCUMENT_ROOT', 'QUERY_STRING', 'REQUEST_METHOD',
    'CONTENT_TYPE', 'CONTENT_LENGTH', 'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'HTTPS',
    'GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_ADDR',
    'SERVER_PORT', 'SERVER_NAME', 'REDIRECT_STATUS',
];
$out = ['node' => getenv('NODE_NAME')];
foreach ($keys as $k) {
    if (array_key_exists($k, $_SERVER)) {
        $out[$k] = $_SERVER[$k];
    }
}
foreach ($_SERVER as $k => $v) {
    if (strncmp($k, 'HTTP_', 5) === 0) {
        $out[$k] = $v;
    }
}
// Stream the body so that large uploads do not hit memory_limit.
$len = 0;
$ctx = hash_init('sha256');
$in = fopen('php://input', 'rb');
if ($in !== false) {
    while (!feof($in)) {
        $chunk = fread($in, 65536);
        if ($chunk === false || $chunk === '') {
            break;
        }
        $len += strlen($chunk);
        hash_update($ctx, $chunk);
    }
    fclose($in);
}
$out['body_len'] = $len;
$out['body_sha256'] = hash_final($ctx);
// Always an object, also when there is no query string ({} rather than []).
$out['get'] = (object) $_GET;
header('Content-Type: application/json');
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
